#include "agent/config/address.h"

#include <arpa/inet.h>

#include <charconv>

namespace gossync::config {
namespace {

bool IsHostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    char ch = h[i];
    if (ch == '.') {
      if (label == 0 || h[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch == '-' && label > 0);
    if (!ok || ++label > 63) return false;
  }
  return h.back() != '-';
}

}  // namespace

std::string HostPort::ToString() const {
  std::string s = ipv6 ? "[" + host + "]" : host;
  return s + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("\"" + std::string(text) + "\" is not host:port (" +
                                   std::string(why) + ")");
  };
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    hp.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing :port");
    port = text.substr(close + 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, hp.host.c_str(), &a6) != 1) return bad("bad IPv6 address");
    hp.numeric = hp.ipv6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :port");
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) return bad("IPv6 addresses go in brackets");
    in_addr a4;
    if (inet_pton(AF_INET, hp.host.c_str(), &a4) == 1) {
      hp.numeric = true;
    } else if (!IsHostname(hp.host)) {
      return bad("bad host");
    }
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("port must be 0-65535");
  }
  hp.port = static_cast<uint16_t>(value);
  return hp;
}

}  // namespace gossync::config
