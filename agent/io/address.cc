#include "agent/io/address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace gossync::io {
namespace {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  bool bracketed = false;
};

std::string Quote(std::string_view text) {
  std::string q = "\"";
  q.append(text);
  q += '"';
  return q;
}

Status Bad(std::string_view text, std::string_view why) {
  std::string m = "bad address ";
  m += Quote(text);
  m += ": ";
  m += why;
  return Status::InvalidArgument(std::move(m));
}

Result<uint16_t> ParsePort(std::string_view text, std::string_view port) {
  if (port.empty()) return Bad(text, "missing port after ':'");
  if (port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Bad(text, "port must be a decimal number from 0 to 65535");
  }
  unsigned value = 0;
  std::from_chars(port.data(), port.data() + port.size(), value);
  if (value > 65535) return Bad(text, "port must be a decimal number from 0 to 65535");
  return static_cast<uint16_t>(value);
}

// Splits "host:port" / "[v6]:port" without judging the host.
Result<HostPort> Split(std::string_view text) {
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return Bad(text, "missing ']' after IPv6 address");
    hp.host = std::string(text.substr(1, close - 1));
    hp.bracketed = true;
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return Bad(text, "expected ':port' after ']', as in [::1]:7946");
    }
    port = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Bad(text, "missing port, expected host:port as in 10.0.0.1:7946");
    }
    hp.host = std::string(text.substr(0, colon));
    if (hp.host.find(':') != std::string::npos) {
      return Bad(text, "an IPv6 address must be in brackets, as in [::1]:7946");
    }
    port = text.substr(colon + 1);
  }
  if (hp.host.empty()) return Bad(text, "missing host before the port");
  Result<uint16_t> p = ParsePort(text, port);
  if (!p.ok()) return p.status();
  hp.port = *p;
  return hp;
}

// Fills `out` from a numeric host, or returns false.
bool ParseNumericHost(const HostPort& hp, sockaddr_storage* out, std::string* why) {
  std::memset(out, 0, sizeof(*out));
  if (!hp.bracketed) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    if (inet_pton(AF_INET, hp.host.c_str(), &in->sin_addr) != 1) {
      *why = "host is not a numeric IPv4 address (use Resolve for names)";
      return false;
    }
    in->sin_family = AF_INET;
    in->sin_port = htons(hp.port);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  std::string addr = hp.host;
  std::string scope;
  if (size_t pct = addr.find('%'); pct != std::string::npos) {
    scope = addr.substr(pct + 1);
    addr.resize(pct);
    if (scope.empty()) {
      *why = "empty IPv6 zone after '%'";
      return false;
    }
  }
  if (inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr) != 1) {
    *why = "not a numeric IPv6 address inside the brackets";
    return false;
  }
  if (!scope.empty()) {
    unsigned index = 0;
    auto [ptr, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), index);
    if (ec != std::errc() || ptr != scope.data() + scope.size()) {
      index = if_nametoindex(scope.c_str());
      if (index == 0) {
        *why = "unknown network interface \"" + scope + "\" after '%'";
        return false;
      }
    }
    in6->sin6_scope_id = index;
  }
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(hp.port);
  return true;
}

}  // namespace

SocketAddress::SocketAddress() { std::memset(&storage_, 0, sizeof(storage_)); }

Result<SocketAddress> SocketAddress::Parse(std::string_view text) {
  Result<HostPort> hp = Split(text);
  if (!hp.ok()) return hp.status();
  SocketAddress a;
  std::string why;
  if (!ParseNumericHost(*hp, &a.storage_, &why)) return Bad(text, why);
  return a;
}

Result<SocketAddress> SocketAddress::FromSockaddr(const sockaddr* sa) {
  SocketAddress a;
  if (sa == nullptr) return Status::InvalidArgument("no socket address");
  if (sa->sa_family == AF_INET) {
    std::memcpy(&a.storage_, sa, sizeof(sockaddr_in));
  } else if (sa->sa_family == AF_INET6) {
    std::memcpy(&a.storage_, sa, sizeof(sockaddr_in6));
  } else {
    return Status::InvalidArgument("unsupported address family " + std::to_string(sa->sa_family));
  }
  return a;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
              sizeof(buf));
    return buf;
  }
  if (family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    std::string s = buf;
    if (in6->sin6_scope_id != 0) {
      char name[IF_NAMESIZE] = {};
      s += '%';
      s += if_indextoname(in6->sin6_scope_id, name) != nullptr ? std::string(name)
                                                               : std::to_string(in6->sin6_scope_id);
    }
    return s;
  }
  return "";
}

std::string SocketAddress::ToString() const {
  if (family() == AF_INET) return host() + ":" + std::to_string(port());
  if (family() == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
  return "(no address)";
}

SocketAddress SocketAddress::WithPort(uint16_t p) const {
  SocketAddress a = *this;
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(p);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(p);
  return a;
}

socklen_t SocketAddress::sockaddr_len() const {
  if (family() == AF_INET) return sizeof(sockaddr_in);
  if (family() == AF_INET6) return sizeof(sockaddr_in6);
  return 0;
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() != b.family()) return false;
  if (a.family() == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage_);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.family() == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage_);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage_);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return true;  // both unset
}

Result<std::vector<SocketAddress>> Resolve(std::string_view host_port) {
  Result<HostPort> hp = Split(host_port);
  if (!hp.ok()) return hp.status();
  if (Result<SocketAddress> numeric = SocketAddress::Parse(host_port); numeric.ok()) {
    return std::vector<SocketAddress>{*numeric};
  }
  if (hp->host.size() > 253) return Bad(host_port, "host name longer than 253 bytes");

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;  // one result per address rather than per socket type
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  std::string port = std::to_string(hp->port);
  int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    std::string m = "cannot resolve " + Quote(host_port) + ": " + gai_strerror(rc);
    if (rc == EAI_AGAIN) return Status::Unavailable(std::move(m));
    if (rc == EAI_SYSTEM) return Status::FromErrno(m, errno);
    return Status::NotFound(std::move(m));
  }
  std::vector<SocketAddress> out;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    Result<SocketAddress> a = SocketAddress::FromSockaddr(ai->ai_addr);
    if (!a.ok()) continue;
    if (std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  freeaddrinfo(list);
  std::stable_partition(out.begin(), out.end(),
                        [](const SocketAddress& a) { return a.family() == AF_INET; });
  if (out.empty()) return Status::NotFound("cannot resolve " + Quote(host_port) + ": no address");
  return out;
}

}  // namespace gossync::io
