#include "agent/core/gossip_types.h"

#include <charconv>

#include "gossync/status.h"

namespace gossync::core {

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kAlive:
      return "alive";
    case MemberState::kSuspect:
      return "suspect";
    case MemberState::kDead:
      return "dead";
    case MemberState::kLeft:
      return "left";
  }
  return "unknown";
}

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kPing:
      return "ping";
    case MessageType::kAck:
      return "ack";
    case MessageType::kPingReq:
      return "ping_req";
    case MessageType::kGossip:
      return "gossip";
    case MessageType::kSyncRequest:
      return "sync_request";
    case MessageType::kSyncPage:
      return "sync_page";
  }
  return "unknown";
}

MemberInfoPtr MakeMemberInfo(std::string name, std::string gossip_addr, std::string repair_addr) {
  return std::make_shared<const MemberInfo>(
      MemberInfo{std::move(name), std::move(gossip_addr), std::move(repair_addr)});
}

MessageType TypeOf(const Body& body) {
  struct Visitor {
    MessageType operator()(const Ping&) const { return MessageType::kPing; }
    MessageType operator()(const Ack&) const { return MessageType::kAck; }
    MessageType operator()(const PingReq&) const { return MessageType::kPingReq; }
    MessageType operator()(const Gossip&) const { return MessageType::kGossip; }
    MessageType operator()(const SyncRequest&) const { return MessageType::kSyncRequest; }
    MessageType operator()(const SyncPage&) const { return MessageType::kSyncPage; }
  };
  return std::visit(Visitor{}, body);
}

// ---- Sizes -----------------------------------------------------------------
// msgpack's smallest encodings, which msgpack-c's packer always chooses.

namespace {

size_t UintSize(uint64_t v) {
  if (v < 128) return 1;           // positive fixint
  if (v <= 0xff) return 2;         // uint8
  if (v <= 0xffff) return 3;       // uint16
  if (v <= 0xffffffffu) return 5;  // uint32
  return 9;                        // uint64
}

size_t StrSize(size_t len) {
  if (len < 32) return 1 + len;       // fixstr
  if (len <= 0xff) return 2 + len;    // str8
  if (len <= 0xffff) return 3 + len;  // str16
  return 5 + len;                     // str32
}

size_t BinSize(size_t len) {
  if (len <= 0xff) return 2 + len;
  if (len <= 0xffff) return 3 + len;
  return 5 + len;
}

size_t ArraySize(size_t n) {
  if (n < 16) return 1;
  if (n <= 0xffff) return 3;
  return 5;
}

size_t BodySize(const Body& body) {
  struct Visitor {
    size_t operator()(const Ping& b) const {
      return ArraySize(3) + UintSize(b.probe_id) + UintSize(b.target_incarnation) +
             UintSize(static_cast<uint8_t>(b.target_state));
    }
    size_t operator()(const Ack& b) const { return ArraySize(1) + UintSize(b.probe_id); }
    size_t operator()(const PingReq& b) const {
      return ArraySize(6) + UintSize(b.probe_id) + StrSize(b.target.size()) +
             StrSize(b.target_addr.size()) + UintSize(b.target_boot) +
             UintSize(b.target_incarnation) + UintSize(static_cast<uint8_t>(b.target_state));
    }
    size_t operator()(const Gossip& b) const {
      return ArraySize(3) + BinSize(b.root.size()) + UintSize(b.entry_count) + UintSize(b.hlc);
    }
    size_t operator()(const SyncRequest& b) const { return ArraySize(1) + UintSize(b.cursor); }
    size_t operator()(const SyncPage& b) const {
      return ArraySize(2) + UintSize(b.next_cursor) + 1;  // bool
    }
  };
  return std::visit(Visitor{}, body);
}

}  // namespace

size_t EncodedSize(const MemberUpdate& u) {
  GOSSYNC_CHECK(u.info != nullptr);
  const bool alive = u.state == MemberState::kAlive;
  const bool accused = u.state == MemberState::kSuspect || u.state == MemberState::kDead;
  return ArraySize(7) + UintSize(static_cast<uint8_t>(u.state)) + UintSize(u.incarnation) +
         StrSize(u.info->name.size()) + StrSize(alive ? u.info->gossip_addr.size() : 0) +
         StrSize(alive ? u.info->repair_addr.size() : 0) + UintSize(alive ? u.boot : 0) +
         StrSize(accused ? u.from.size() : 0);
}

size_t EncodedSizeWithoutUpdates(const Packet& p) {
  GOSSYNC_CHECK(p.sender != nullptr);
  return 1 /* message type */ + ArraySize(12) + UintSize(kProtocolVersion) +
         StrSize(p.sender->name.size()) + UintSize(static_cast<uint8_t>(p.sender_state)) +
         UintSize(p.incarnation) + StrSize(p.sender->gossip_addr.size()) +
         StrSize(p.sender->repair_addr.size()) + UintSize(p.boot_id) + UintSize(p.seq) +
         StrSize(p.to.size()) + UintSize(p.to_boot) + BodySize(p.body) + ArraySize(0);
}

size_t EncodedSize(const Packet& p) {
  size_t n = EncodedSizeWithoutUpdates(p) - ArraySize(0) + ArraySize(p.updates.size());
  for (const MemberUpdate& u : p.updates) n += EncodedSize(u);
  return n;
}

// ---- Addresses ---------------------------------------------------------------

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool IsIpv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    unsigned v = 0;
    while (i < s.size() && IsDigit(s[i]) && i - start < 3) v = v * 10 + (s[i++] - '0');
    if (i == start || v > 255) return false;
    if (i - start > 1 && s[start] == '0') return false;  // no leading zeros (octal doubt)
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

// The part inside the brackets: hex groups, ':' and '.', then "%zone".
bool IsIpv6Literal(std::string_view s) {
  size_t pct = s.find('%');
  std::string_view addr = s.substr(0, pct);
  if (pct != std::string_view::npos) {
    std::string_view zone = s.substr(pct + 1);
    if (zone.empty()) return false;
    for (char c : zone) {
      if (!IsAlpha(c) && !IsDigit(c) && c != '-' && c != '_' && c != '.') return false;
    }
  }
  if (addr.size() < 2) return false;
  int colons = 0;
  for (char c : addr) {
    if (c == ':') {
      ++colons;
    } else if (!IsHex(c) && c != '.') {
      return false;
    }
  }
  return colons >= 2 && colons <= 7;
}

bool IsDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (IsAlpha(c) || IsDigit(c) || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  if (prev == '-' || prev == '.') return false;
  // An all-digit last label would be a mistyped IPv4 address, not a name.
  std::string_view last = s.substr(s.rfind('.') == std::string_view::npos ? 0 : s.rfind('.') + 1);
  for (char c : last) {
    if (!IsDigit(c)) return true;
  }
  return false;
}

}  // namespace

bool IsValidHostPort(std::string_view addr) {
  if (addr.empty() || addr.size() > kMaxAddrBytes) return false;
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = addr.substr(0, colon);
  std::string_view port = addr.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (!IsDigit(c)) return false;
  }
  unsigned p = 0;
  std::from_chars(port.data(), port.data() + port.size(), p);
  if (p == 0 || p > 65535) return false;
  if (!host.empty() && host.front() == '[') {
    return host.size() > 2 && host.back() == ']' && IsIpv6Literal(host.substr(1, host.size() - 2));
  }
  return IsIpv4(host) || IsDnsName(host);
}

}  // namespace gossync::core
