#include "agent/wire/gossip_codec.h"

#include <msgpack.hpp>

#include "agent/core/entry.h"
#include "agent/wire/msgpack_util.h"

namespace gossync::wire {

const char* GossipDropName(GossipDrop d) {
  switch (d) {
    case GossipDrop::kNone:
      return "none";
    case GossipDrop::kTooLarge:
      return "too_large";
    case GossipDrop::kUnknownType:
      return "unknown_type";
    case GossipDrop::kBadVersion:
      return "bad_version";
    case GossipDrop::kMalformed:
      return "malformed";
    case GossipDrop::kInvalid:
      return "invalid";
  }
  return "unknown";
}

namespace {

constexpr size_t kHeaderFields = 12;
constexpr size_t kUpdateFields = 7;
// Room for fields a newer version appends; beyond that, it is not a packet.
constexpr size_t kMaxFields = 32;

using Packer = msgpack::packer<msgpack::sbuffer>;

void PackState(Packer& pk, core::MemberState s) { pk.pack(static_cast<uint8_t>(s)); }

void PackBody(Packer& pk, const core::Body& body) {
  struct Visitor {
    Packer& pk;
    void operator()(const core::Ping& b) const {
      pk.pack_array(3);
      pk.pack(b.probe_id);
      pk.pack(b.target_incarnation);
      PackState(pk, b.target_state);
    }
    void operator()(const core::Ack& b) const {
      pk.pack_array(1);
      pk.pack(b.probe_id);
    }
    void operator()(const core::PingReq& b) const {
      pk.pack_array(6);
      pk.pack(b.probe_id);
      pk.pack(b.target);
      pk.pack(b.target_addr);
      pk.pack(b.target_boot);
      pk.pack(b.target_incarnation);
      PackState(pk, b.target_state);
    }
    void operator()(const core::Gossip& b) const {
      pk.pack_array(3);
      pk.pack_bin(static_cast<uint32_t>(b.root.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.root.data()),
                       static_cast<uint32_t>(b.root.size()));
      pk.pack(b.entry_count);
      pk.pack(b.hlc);
    }
    void operator()(const core::SyncRequest& b) const {
      pk.pack_array(1);
      pk.pack(b.cursor);
    }
    void operator()(const core::SyncPage& b) const {
      pk.pack_array(2);
      pk.pack(b.next_cursor);
      pk.pack(b.done);
    }
  };
  std::visit(Visitor{pk}, body);
}

void PackUpdate(Packer& pk, const core::MemberUpdate& u) {
  GOSSYNC_CHECK(u.info != nullptr);
  const bool alive = u.state == core::MemberState::kAlive;
  const bool accused =
      u.state == core::MemberState::kSuspect || u.state == core::MemberState::kDead;
  static const std::string kEmpty;
  pk.pack_array(kUpdateFields);
  PackState(pk, u.state);
  pk.pack(u.incarnation);
  pk.pack(u.info->name);
  pk.pack(alive ? u.info->gossip_addr : kEmpty);
  pk.pack(alive ? u.info->repair_addr : kEmpty);
  pk.pack(alive ? u.boot : uint64_t{0});
  pk.pack(accused ? u.from : kEmpty);
}

// ---- Decoding ----

Status Invalid(const std::string& what) { return Status::InvalidArgument(what); }

Status ReadName(const ArrayReader& f, size_t i, std::string_view field, std::string* out,
                bool may_be_empty) {
  GOSSYNC_RETURN_IF_ERROR(f.Str(i, field, out, 63));
  if (out->empty() && may_be_empty) return Status::Ok();
  if (!core::IsValidNodeName(*out)) {
    return Invalid(std::string(field) + ": not a valid node name");
  }
  return Status::Ok();
}

Status ReadAddr(const ArrayReader& f, size_t i, std::string_view field, std::string* out,
                bool may_be_empty) {
  GOSSYNC_RETURN_IF_ERROR(f.Str(i, field, out, core::kMaxAddrBytes));
  if (out->empty() && may_be_empty) return Status::Ok();
  if (!core::IsValidHostPort(*out)) return Invalid(std::string(field) + ": not host:port");
  return Status::Ok();
}

Status ReadState(const ArrayReader& f, size_t i, std::string_view field, core::MemberState* out) {
  uint64_t v = 0;
  GOSSYNC_RETURN_IF_ERROR(f.Uint(i, field, &v, core::kMemberStateCount - 1));
  *out = static_cast<core::MemberState>(v);
  return Status::Ok();
}

Result<core::Body> ReadBody(core::MessageType type, const ArrayReader& b) {
  switch (type) {
    case core::MessageType::kPing: {
      core::Ping m;
      GOSSYNC_RETURN_IF_ERROR(b.Uint(0, "probe_id", &m.probe_id));
      GOSSYNC_RETURN_IF_ERROR(b.Uint(1, "target_incarnation", &m.target_incarnation));
      GOSSYNC_RETURN_IF_ERROR(ReadState(b, 2, "target_state", &m.target_state));
      return core::Body(m);
    }
    case core::MessageType::kAck: {
      core::Ack m;
      GOSSYNC_RETURN_IF_ERROR(b.Uint(0, "probe_id", &m.probe_id));
      return core::Body(m);
    }
    case core::MessageType::kPingReq: {
      core::PingReq m;
      GOSSYNC_RETURN_IF_ERROR(b.Uint(0, "probe_id", &m.probe_id));
      GOSSYNC_RETURN_IF_ERROR(ReadName(b, 1, "target", &m.target, false));
      GOSSYNC_RETURN_IF_ERROR(ReadAddr(b, 2, "target_addr", &m.target_addr, false));
      GOSSYNC_RETURN_IF_ERROR(b.Uint(3, "target_boot", &m.target_boot));
      GOSSYNC_RETURN_IF_ERROR(b.Uint(4, "target_incarnation", &m.target_incarnation));
      GOSSYNC_RETURN_IF_ERROR(ReadState(b, 5, "target_state", &m.target_state));
      return core::Body(std::move(m));
    }
    case core::MessageType::kGossip: {
      core::Gossip m;
      GOSSYNC_RETURN_IF_ERROR(b.Hash(0, "root", &m.root));
      GOSSYNC_RETURN_IF_ERROR(b.Uint(1, "entry_count", &m.entry_count));
      GOSSYNC_RETURN_IF_ERROR(b.Uint(2, "hlc", &m.hlc));
      return core::Body(m);
    }
    case core::MessageType::kSyncRequest: {
      core::SyncRequest m;
      uint64_t cursor = 0;
      GOSSYNC_RETURN_IF_ERROR(b.Uint(0, "cursor", &cursor, UINT32_MAX));
      m.cursor = static_cast<uint32_t>(cursor);
      return core::Body(m);
    }
    case core::MessageType::kSyncPage: {
      core::SyncPage m;
      uint64_t cursor = 0;
      GOSSYNC_RETURN_IF_ERROR(b.Uint(0, "next_cursor", &cursor, UINT32_MAX));
      GOSSYNC_RETURN_IF_ERROR(b.Bool(1, "done", &m.done));
      m.next_cursor = static_cast<uint32_t>(cursor);
      return core::Body(m);
    }
  }
  return Status::Internal("unreachable");
}

size_t BodyFields(core::MessageType type) {
  switch (type) {
    case core::MessageType::kPing:
      return 3;
    case core::MessageType::kAck:
      return 1;
    case core::MessageType::kPingReq:
      return 6;
    case core::MessageType::kGossip:
      return 3;
    case core::MessageType::kSyncRequest:
      return 1;
    case core::MessageType::kSyncPage:
      return 2;
  }
  return 0;
}

bool KnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(core::MessageType::kPing) &&
         t <= static_cast<uint8_t>(core::MessageType::kSyncPage);
}

// One update; nullopt (and no error) for a state this version does not know.
Result<std::optional<core::MemberUpdate>> ReadUpdate(const ArrayReader& f) {
  uint64_t state = 0;
  GOSSYNC_RETURN_IF_ERROR(f.Uint(0, "state", &state, 255));
  if (state >= core::kMemberStateCount) return std::optional<core::MemberUpdate>();
  core::MemberUpdate u;
  u.state = static_cast<core::MemberState>(state);
  std::string name, gossip_addr, repair_addr;
  GOSSYNC_RETURN_IF_ERROR(f.Uint(1, "incarnation", &u.incarnation));
  GOSSYNC_RETURN_IF_ERROR(ReadName(f, 2, "name", &name, false));
  const bool alive = u.state == core::MemberState::kAlive;
  const bool accused =
      u.state == core::MemberState::kSuspect || u.state == core::MemberState::kDead;
  // An alive member must be reachable: its gossip address is required.
  GOSSYNC_RETURN_IF_ERROR(ReadAddr(f, 3, "gossip_addr", &gossip_addr, !alive));
  GOSSYNC_RETURN_IF_ERROR(ReadAddr(f, 4, "repair_addr", &repair_addr, true));
  GOSSYNC_RETURN_IF_ERROR(f.Uint(5, "boot", &u.boot));
  GOSSYNC_RETURN_IF_ERROR(ReadName(f, 6, "from", &u.from, !accused));
  if (!alive) {
    // Only alive claims carry these; ignore whatever a peer put there.
    gossip_addr.clear();
    repair_addr.clear();
    u.boot = 0;
  }
  if (!accused) u.from.clear();
  u.info = core::MakeMemberInfo(std::move(name), std::move(gossip_addr), std::move(repair_addr));
  return std::optional<core::MemberUpdate>(std::move(u));
}

Result<core::Packet> Decode(std::span<const uint8_t> bytes, GossipDecodeInfo* info) {
  auto fail = [info](GossipDrop d, Status s) {
    info->drop = d;
    return s;
  };
  if (bytes.size() > core::kMaxDatagramBytes) {
    return fail(
        GossipDrop::kTooLarge,
        Status::LimitExceeded("gossip packet of " + std::to_string(bytes.size()) +
                              " bytes, more than " + std::to_string(core::kMaxDatagramBytes)));
  }
  if (bytes.empty()) return fail(GossipDrop::kMalformed, Status::Corruption("empty gossip packet"));
  if (!KnownType(bytes[0])) {
    return fail(GossipDrop::kUnknownType,
                Status::NotFound("gossip message type " + std::to_string(bytes[0]) +
                                 " is unknown to this version"));
  }
  const auto type = static_cast<core::MessageType>(bytes[0]);
  UnpackLimits limits;
  limits.max_array = std::max(kMaxFields, core::kMaxUpdatesPerPacket);
  limits.max_map = 0;
  limits.max_str = core::kMaxAddrBytes;
  limits.max_bin = 32;
  limits.max_depth = 4;  // packet > updates > update (body: depth 2)
  limits.max_objects = 2048;
  auto oh = SafeUnpack(bytes.subspan(1), limits);
  if (!oh.ok()) return fail(GossipDrop::kMalformed, oh.status());

  auto top = ArrayReader::Open(oh->get(), "packet", kHeaderFields, kMaxFields);
  if (!top.ok()) return fail(GossipDrop::kInvalid, top.status());
  const ArrayReader& f = *top;
  uint64_t version = 0;
  if (Status s = f.Uint(0, "version", &version); !s.ok()) return fail(GossipDrop::kInvalid, s);
  if (version != core::kProtocolVersion) {
    return fail(
        GossipDrop::kBadVersion,
        Status::InvalidArgument("gossip protocol version " + std::to_string(version) +
                                ", this node speaks " + std::to_string(core::kProtocolVersion)));
  }
  core::Packet p;
  std::string name, gossip_addr, repair_addr;
  Status s = [&]() -> Status {
    GOSSYNC_RETURN_IF_ERROR(ReadName(f, 1, "sender", &name, false));
    GOSSYNC_RETURN_IF_ERROR(ReadState(f, 2, "state", &p.sender_state));
    if (p.sender_state != core::MemberState::kAlive && p.sender_state != core::MemberState::kLeft) {
      return Invalid("packet.state: a sender is alive or left");
    }
    GOSSYNC_RETURN_IF_ERROR(f.Uint(3, "incarnation", &p.incarnation));
    GOSSYNC_RETURN_IF_ERROR(ReadAddr(f, 4, "gossip_addr", &gossip_addr, true));
    GOSSYNC_RETURN_IF_ERROR(ReadAddr(f, 5, "repair_addr", &repair_addr, true));
    GOSSYNC_RETURN_IF_ERROR(f.Uint(6, "boot_id", &p.boot_id));
    GOSSYNC_RETURN_IF_ERROR(f.Uint(7, "seq", &p.seq));
    if (p.boot_id == 0 || p.seq == 0) return Invalid("packet: boot_id and seq start at 1");
    GOSSYNC_RETURN_IF_ERROR(ReadName(f, 8, "to", &p.to, true));
    GOSSYNC_RETURN_IF_ERROR(f.Uint(9, "to_boot", &p.to_boot));
    if (p.to.empty() && p.to_boot != 0) return Invalid("packet.to_boot: set without packet.to");
    auto body = f.Array(10, "body", BodyFields(type), kMaxFields);
    if (!body.ok()) return body.status();
    auto b = ReadBody(type, *body);
    if (!b.ok())
      return b.status().Prefixed(std::string("packet.body (") + core::MessageTypeName(type) + ")");
    p.body = std::move(*b);
    auto list = f.Array(11, "updates", 0, core::kMaxUpdatesPerPacket);
    if (!list.ok()) return list.status();
    p.updates.reserve(list->size());
    for (size_t i = 0; i < list->size(); ++i) {
      auto item = list->Array(i, "[" + std::to_string(i) + "]", kUpdateFields, kMaxFields);
      if (!item.ok()) return item.status();
      auto u = ReadUpdate(*item);
      if (!u.ok()) return u.status().Prefixed("packet.updates[" + std::to_string(i) + "]");
      if (!u->has_value()) {
        ++info->skipped_updates;
        continue;
      }
      p.updates.push_back(std::move(**u));
    }
    return Status::Ok();
  }();
  if (!s.ok()) return fail(GossipDrop::kInvalid, s);
  p.sender = core::MakeMemberInfo(std::move(name), std::move(gossip_addr), std::move(repair_addr));
  return p;
}

}  // namespace

std::vector<uint8_t> EncodeGossipPacket(const core::Packet& p) {
  GOSSYNC_CHECK(p.sender != nullptr);
  msgpack::sbuffer buf(core::EncodedSize(p));
  const char type = static_cast<char>(core::TypeOf(p.body));
  buf.write(&type, 1);
  Packer pk(buf);
  pk.pack_array(kHeaderFields);
  pk.pack(core::kProtocolVersion);
  pk.pack(p.sender->name);
  PackState(pk, p.sender_state);
  pk.pack(p.incarnation);
  pk.pack(p.sender->gossip_addr);
  pk.pack(p.sender->repair_addr);
  pk.pack(p.boot_id);
  pk.pack(p.seq);
  pk.pack(p.to);
  pk.pack(p.to_boot);
  PackBody(pk, p.body);
  pk.pack_array(static_cast<uint32_t>(p.updates.size()));
  for (const core::MemberUpdate& u : p.updates) PackUpdate(pk, u);
  std::vector<uint8_t> out(reinterpret_cast<const uint8_t*>(buf.data()),
                           reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
  // The core packs to its budget with this size model; they must agree.
  GOSSYNC_CHECK(out.size() == core::EncodedSize(p));
  return out;
}

Result<core::Packet> DecodeGossipPacket(std::span<const uint8_t> bytes, GossipDecodeInfo* info) {
  GossipDecodeInfo local;
  if (info == nullptr) info = &local;
  *info = GossipDecodeInfo{};
  return Decode(bytes, info);
}

namespace {

bool SameUpdate(const core::MemberUpdate& a, const core::MemberUpdate& b) {
  return a.state == b.state && a.incarnation == b.incarnation && *a.info == *b.info &&
         a.boot == b.boot && a.from == b.from;
}

}  // namespace

int FuzzDecodeGossipPacket(const uint8_t* data, size_t size) {
  auto p = DecodeGossipPacket(std::span<const uint8_t>(data, size));
  if (!p.ok()) return 0;
  std::vector<uint8_t> again = EncodeGossipPacket(*p);
  auto q = DecodeGossipPacket(again);
  GOSSYNC_CHECK(q.ok());
  GOSSYNC_CHECK(*q->sender == *p->sender && q->sender_state == p->sender_state &&
                q->incarnation == p->incarnation && q->boot_id == p->boot_id && q->seq == p->seq &&
                q->to == p->to && q->to_boot == p->to_boot && q->body.index() == p->body.index() &&
                q->updates.size() == p->updates.size());
  for (size_t i = 0; i < p->updates.size(); ++i) {
    GOSSYNC_CHECK(SameUpdate(p->updates[i], q->updates[i]));
  }
  GOSSYNC_CHECK(EncodeGossipPacket(*q) == again);
  return 0;
}

}  // namespace gossync::wire
