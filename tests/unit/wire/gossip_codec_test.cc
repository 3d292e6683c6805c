#include "agent/wire/gossip_codec.h"

#include <catch2/catch.hpp>
#include <msgpack.hpp>
#include <random>

#include "agent/core/membership.h"
#include "agent/wire/msgpack_util.h"
#include "tests/unit/core/seed.h"

namespace gossync::wire {
namespace {

using core::MemberState;
using core::MemberUpdate;
using core::Packet;

Packet Base(core::Body body) {
  Packet p;
  p.sender = core::MakeMemberInfo("alpha", "10.0.0.1:7946", "10.0.0.1:7947");
  p.incarnation = 1700000000;
  p.boot_id = (uint64_t{1700000000123} << 16) | 0xbeef;
  p.seq = 42;
  p.to = "beta";
  p.to_boot = 99;
  p.body = std::move(body);
  return p;
}

std::vector<MemberUpdate> SomeUpdates() {
  return {
      {MemberState::kAlive,
       7,
       core::MakeMemberInfo("gamma", "[::1]:7946", "gamma.lan:7947"),
       55,
       {}},
      {MemberState::kSuspect, 3, core::MakeMemberInfo("delta", "", ""), 0, "alpha"},
      {MemberState::kDead, 4, core::MakeMemberInfo("eps", "", ""), 0, "beta"},
      {MemberState::kLeft, 9, core::MakeMemberInfo("zeta", "", ""), 0, {}},
  };
}

void CheckSame(const Packet& a, const Packet& b) {
  CHECK(*a.sender == *b.sender);
  CHECK(a.sender_state == b.sender_state);
  CHECK(a.incarnation == b.incarnation);
  CHECK(a.boot_id == b.boot_id);
  CHECK(a.seq == b.seq);
  CHECK(a.to == b.to);
  CHECK(a.to_boot == b.to_boot);
  CHECK(core::TypeOf(a.body) == core::TypeOf(b.body));
  REQUIRE(a.updates.size() == b.updates.size());
  for (size_t i = 0; i < a.updates.size(); ++i) {
    CHECK(a.updates[i].state == b.updates[i].state);
    CHECK(a.updates[i].incarnation == b.updates[i].incarnation);
    CHECK(*a.updates[i].info == *b.updates[i].info);
    CHECK(a.updates[i].boot == b.updates[i].boot);
    CHECK(a.updates[i].from == b.updates[i].from);
  }
}

TEST_CASE("GossipCodec: every message type survives a round trip, at the modelled size",
          "[gossip_codec]") {
  core::Hash256 root{};
  for (size_t i = 0; i < root.size(); ++i) root[i] = static_cast<uint8_t>(i * 7);
  std::vector<core::Body> bodies = {
      core::Ping{0xfffffffffffffffful, 12, MemberState::kSuspect},
      core::Ack{1},
      core::PingReq{77, "gamma", "10.0.0.3:7946", 123456789, 5, MemberState::kAlive},
      core::Gossip{root, 123456, 0x1234567890},
      core::SyncRequest{4000000000u},
      core::SyncPage{17, true},
  };
  for (const core::Body& body : bodies) {
    Packet p = Base(body);
    p.updates = SomeUpdates();
    std::vector<uint8_t> bytes = EncodeGossipPacket(p);
    CHECK(bytes.size() == core::EncodedSize(p));
    CHECK(bytes[0] == static_cast<uint8_t>(core::TypeOf(body)));
    auto q = DecodeGossipPacket(bytes);
    REQUIRE(q.ok());
    CheckSame(p, *q);
    if (auto* g = std::get_if<core::Gossip>(&q->body)) {
      CHECK(g->root == root);
      CHECK(g->entry_count == 123456);
      CHECK(g->hlc == 0x1234567890);
    }
    if (auto* r = std::get_if<core::PingReq>(&q->body)) {
      CHECK(r->target == "gamma");
      CHECK(r->target_addr == "10.0.0.3:7946");
      CHECK(r->target_boot == 123456789);
    }
    if (auto* s = std::get_if<core::SyncRequest>(&q->body)) CHECK(s->cursor == 4000000000u);
  }
}

TEST_CASE("GossipCodec: the size model matches the encoder for random packets", "[gossip_codec]") {
  GOSSYNC_SEEDED_RNG(77);
  auto rnd_uint = [&]() -> uint64_t {
    switch (rng() % 5) {
      case 0:
        return rng() % 128;
      case 1:
        return rng() % 256;
      case 2:
        return rng() % 65536;
      case 3:
        return rng() % (uint64_t{1} << 32);
      default:
        return rng();
    }
  };
  auto rnd_name = [&](size_t max) {
    std::string s(1 + rng() % max, 'a');
    for (char& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
  };
  auto rnd_host = [&](size_t max) {  // labels of 1..20 letters, up to `max` bytes
    std::string h = rnd_name(20);
    size_t want = 1 + rng() % max;
    while (h.size() + 2 < want) h += "." + rnd_name(std::min<size_t>(20, want - h.size() - 1));
    return h;
  };
  int decoded = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    Packet p = Base(core::Ack{rnd_uint()});
    p.sender = core::MakeMemberInfo(rnd_name(63), rnd_host(240) + ".x:1", "");
    p.incarnation = rnd_uint();
    p.boot_id = rnd_uint() | 1;
    p.seq = rnd_uint() | 1;
    p.to = rng() % 2 ? rnd_name(63) : "";
    p.to_boot = p.to.empty() ? 0 : rnd_uint();
    size_t n = rng() % 40;
    for (size_t i = 0; i < n; ++i) {
      auto st = static_cast<MemberState>(rng() % 4);
      MemberUpdate u{st, rnd_uint(),
                     core::MakeMemberInfo(rnd_name(63), rnd_host(240) + ".y:65535", "a.b:2"),
                     rnd_uint(), rnd_name(63)};
      p.updates.push_back(u);
    }
    std::vector<uint8_t> bytes = EncodeGossipPacket(p);  // CHECKs the model itself
    REQUIRE(bytes.size() == core::EncodedSize(p));
    if (bytes.size() > core::kMaxDatagramBytes) continue;  // only the size model is checked
    ++decoded;
    auto q = DecodeGossipPacket(bytes);
    INFO(q.status().ToString());
    REQUIRE(q.ok());
    REQUIRE(q->updates.size() == n);
  }
  CHECK(decoded > 200);
}

TEST_CASE("GossipCodec: a fully packed packet stays under 1,200 bytes sealed",
          "[gossip_codec][bounds]") {
  // Members with the longest names and addresses, more than fit, queued on a
  // node with the longest name and addresses; every packet it sends, encoded
  // for real, plus the sealing overhead, stays under the datagram limit.
  const std::string label(63, 'h');
  const std::string addr =
      label + "." + label + "." + label + "." + std::string(57, 'h') + ":65535";
  core::MembershipConfig c;
  c.name = std::string(63, 'a');
  c.gossip_addr = addr;
  c.repair_addr = addr;
  c.boot_id = ~uint64_t{0};
  c.rng_seed = 3;
  c.initial_incarnation = ~uint64_t{0} - 1000;
  core::Membership m(c);
  std::vector<MemberUpdate> members;
  for (int i = 0; i < 400; ++i) {
    std::string name = std::to_string(i) + std::string(63, 'm');
    name.resize(63);
    members.push_back({MemberState::kAlive,
                       ~uint64_t{0},
                       core::MakeMemberInfo(name, addr, addr),
                       ~uint64_t{0},
                       {}});
  }
  m.Bootstrap(1000, members);
  // A sender with maximal fields whose packets piggyback all 400 as news.
  Packet in = Base(core::Gossip{});
  in.sender = core::MakeMemberInfo(std::string(63, 'z'), addr, addr);
  in.to = m.name();
  in.to_boot = m.boot_id();
  core::Actions out;
  for (size_t i = 0; i < members.size(); i += 4) {
    in.seq++;
    in.updates.clear();
    for (size_t k = i; k < i + 4 && k < members.size(); ++k) {
      MemberUpdate u = members[k];
      u.state = MemberState::kSuspect;  // news: each is queued again
      u.from = std::string(63, 'f');
      in.updates.push_back(u);
    }
    m.HandlePacket(1000 + i, addr, in, &out);
  }
  REQUIRE(m.broadcasts().size() > 100);
  for (uint64_t t = 1000; t < 20000; t = std::max(t + 1, m.NextTickMs())) m.Tick(t, &out);
  size_t largest = 0, with_updates = 0;
  for (const core::Outgoing& o : out.sends) {
    std::vector<uint8_t> bytes = EncodeGossipPacket(o.packet);
    REQUIRE(bytes.size() + core::kSealOverhead <= core::kMaxDatagramBytes);
    largest = std::max(largest, bytes.size());
    with_updates += !o.packet.updates.empty();
    REQUIRE(DecodeGossipPacket(bytes).ok());
  }
  CHECK(with_updates > 10);
  CHECK(largest + core::kSealOverhead > 1100);  // filled to the budget, not under-packed
}

// ---- Hostile input ----------------------------------------------------------

std::vector<uint8_t> Valid() {
  Packet p = Base(core::Ping{1, 2, MemberState::kAlive});
  p.updates = SomeUpdates();
  return EncodeGossipPacket(p);
}

GossipDrop DropOf(const std::vector<uint8_t>& bytes) {
  GossipDecodeInfo info;
  auto r = DecodeGossipPacket(bytes, &info);
  if (r.ok()) return GossipDrop::kNone;
  CHECK(info.drop != GossipDrop::kNone);
  return info.drop;
}

// Re-encodes a valid packet with one header field replaced.
template <typename F>
std::vector<uint8_t> WithField(size_t index, F pack_replacement) {
  std::vector<uint8_t> good = Valid();
  auto oh = SafeUnpack(std::span<const uint8_t>(good).subspan(1));
  REQUIRE(oh.ok());
  const msgpack::object& top = oh->get();
  msgpack::sbuffer buf;
  char type = static_cast<char>(good[0]);
  buf.write(&type, 1);
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(top.via.array.size);
  for (uint32_t i = 0; i < top.via.array.size; ++i) {
    if (i == index) {
      pack_replacement(pk);
    } else {
      pk.pack(top.via.array.ptr[i]);
    }
  }
  return std::vector<uint8_t>(buf.data(), buf.data() + buf.size());
}

TEST_CASE("GossipCodec: truncations and random bytes are rejected, never crash",
          "[gossip_codec][hostile]") {
  std::vector<uint8_t> good = Valid();
  REQUIRE(DropOf(good) == GossipDrop::kNone);
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    CHECK(DropOf(cut) != GossipDrop::kNone);
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  CHECK(DropOf(longer) == GossipDrop::kMalformed);
  GOSSYNC_SEEDED_RNG(5);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> junk(rng() % 300);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    if (!junk.empty() && rng() % 2) junk[0] = static_cast<uint8_t>(1 + rng() % 6);
    FuzzDecodeGossipPacket(junk.data(), junk.size());
    // Flip bytes of a valid packet, too.
    std::vector<uint8_t> flipped = good;
    for (int k = 0; k < 3; ++k) flipped[rng() % flipped.size()] = static_cast<uint8_t>(rng());
    FuzzDecodeGossipPacket(flipped.data(), flipped.size());
  }
}

TEST_CASE("GossipCodec: unknown types, versions and states are told apart",
          "[gossip_codec][hostile]") {
  std::vector<uint8_t> bytes = Valid();
  bytes[0] = 200;
  CHECK(DropOf(bytes) == GossipDrop::kUnknownType);
  bytes[0] = 0;
  CHECK(DropOf(bytes) == GossipDrop::kUnknownType);
  CHECK(DropOf(WithField(0, [](auto& pk) { pk.pack(2); })) == GossipDrop::kBadVersion);
  CHECK(DropOf(std::vector<uint8_t>(core::kMaxDatagramBytes + 1, 1)) == GossipDrop::kTooLarge);

  // An update with a state from a newer version is skipped and counted.
  auto future = WithField(11, [](auto& pk) {
    pk.pack_array(2);
    pk.pack_array(7);
    pk.pack(9);  // a state that does not exist yet
    pk.pack(1);
    pk.pack(std::string("gamma"));
    pk.pack(std::string(""));
    pk.pack(std::string(""));
    pk.pack(0);
    pk.pack(std::string(""));
    pk.pack_array(7);
    pk.pack(0);
    pk.pack(1);
    pk.pack(std::string("delta"));
    pk.pack(std::string("10.0.0.4:7946"));
    pk.pack(std::string(""));
    pk.pack(3);
    pk.pack(std::string(""));
  });
  GossipDecodeInfo info;
  auto p = DecodeGossipPacket(future, &info);
  REQUIRE(p.ok());
  CHECK(info.skipped_updates == 1);
  REQUIRE(p->updates.size() == 1);
  CHECK(p->updates[0].info->name == "delta");

  // Fields appended by a newer version are ignored.
  auto extra = WithField(11, [](auto& pk) { pk.pack_array(0); });
  extra[1] = static_cast<uint8_t>(0x90 | 13);  // fixarray of 13: one more field...
  extra.push_back(0x05);                       // ...holding 5
  CHECK(DropOf(extra) == GossipDrop::kNone);
}

TEST_CASE("GossipCodec: every field is validated", "[gossip_codec][hostile]") {
  auto str = [](std::string s) { return [s](auto& pk) { pk.pack(s); }; };
  auto num = [](uint64_t v) { return [v](auto& pk) { pk.pack(v); }; };
  CHECK(DropOf(WithField(1, str("Alpha"))) == GossipDrop::kInvalid);  // name
  CHECK(DropOf(WithField(1, str(""))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(1, str(std::string(64, 'a')))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(1, num(3))) == GossipDrop::kInvalid);  // type
  CHECK(DropOf(WithField(2, num(1))) == GossipDrop::kInvalid);  // suspect sender
  CHECK(DropOf(WithField(2, num(4))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(4, str("10.0.0.1"))) == GossipDrop::kInvalid);  // no port
  CHECK(DropOf(WithField(4, str("10.0.0.1:0"))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(4, str("10.0.0.1:65536"))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(4, str("::1:7946"))) == GossipDrop::kInvalid);  // unbracketed v6
  CHECK(DropOf(WithField(4, str("a b:1"))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(5, str("x:1:2"))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(6, num(0))) == GossipDrop::kInvalid);     // boot id
  CHECK(DropOf(WithField(7, num(0))) == GossipDrop::kInvalid);     // seq
  CHECK(DropOf(WithField(8, str("-x"))) == GossipDrop::kInvalid);  // to
  CHECK(DropOf(WithField(8, str(""))) == GossipDrop::kInvalid);    // to_boot without to
  CHECK(DropOf(WithField(3, [](auto& pk) { pk.pack(-1); })) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(10, [](auto& pk) {  // short body
          pk.pack_array(2);
          pk.pack(1);
          pk.pack(2);
        })) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(10, [](auto& pk) {  // bad target state
          pk.pack_array(3);
          pk.pack(1);
          pk.pack(2);
          pk.pack(7);
        })) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(11, [](auto& pk) {  // too many updates
          pk.pack_array(65);
          for (int i = 0; i < 65; ++i) {
            pk.pack_array(7);
            pk.pack(3);
            pk.pack(1);
            pk.pack(std::string("g"));
            pk.pack(std::string(""));
            pk.pack(std::string(""));
            pk.pack(0);
            pk.pack(std::string(""));
          }
        })) != GossipDrop::kNone);
  auto update = [](int state, std::string name, std::string addr, std::string from) {
    return [=](auto& pk) {
      pk.pack_array(1);
      pk.pack_array(7);
      pk.pack(state);
      pk.pack(1);
      pk.pack(name);
      pk.pack(addr);
      pk.pack(std::string(""));
      pk.pack(5);
      pk.pack(from);
    };
  };
  CHECK(DropOf(WithField(11, update(0, "gamma", "10.0.0.3:7946", ""))) == GossipDrop::kNone);
  CHECK(DropOf(WithField(11, update(0, "gamma", "", ""))) == GossipDrop::kInvalid);  // unreachable
  CHECK(DropOf(WithField(11, update(0, "Gamma", "10.0.0.3:7946", ""))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(11, update(1, "gamma", "", ""))) == GossipDrop::kInvalid);  // no accuser
  CHECK(DropOf(WithField(11, update(2, "gamma", "", "b c"))) == GossipDrop::kInvalid);
  CHECK(DropOf(WithField(11, update(3, "gamma", "", ""))) == GossipDrop::kNone);
}

}  // namespace
}  // namespace gossync::wire
