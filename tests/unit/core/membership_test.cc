// core::Membership, packet by packet (a hand-driven peer) and in small
// clusters on the simulated clock and network (tests/testutil/sim_cluster.h).
// No sleeps: simulated time only.
#include "agent/core/membership.h"

#include <catch2/catch.hpp>

#include "tests/testutil/sim_cluster.h"

namespace gossync::core {
namespace {

using testing::SimCluster;
using testing::SimOptions;

constexpr uint64_t kBootA = uint64_t{5000} << 16;
constexpr uint64_t kBootB = uint64_t{6000} << 16;

MembershipConfig Config(const std::string& name, const std::string& addr, uint64_t boot) {
  MembershipConfig c;
  c.name = name;
  c.gossip_addr = addr;
  c.repair_addr = "10.0.0.1:7947";
  c.boot_id = boot;
  c.rng_seed = 1;
  c.initial_incarnation = 1;
  return c;
}

Hash256 Root(uint8_t b) {
  Hash256 h{};
  h.fill(b);
  return h;
}

// A member driven by hand: builds the packets it would send.
struct Peer {
  MemberInfoPtr info;
  uint64_t boot;
  uint64_t inc = 1;
  uint64_t seq = 0;

  Packet To(const std::string& name, uint64_t to_boot, Body body,
            std::vector<MemberUpdate> updates = {}) {
    Packet p;
    p.sender = info;
    p.incarnation = inc;
    p.boot_id = boot;
    p.seq = ++seq;
    p.to = name;
    p.to_boot = to_boot;
    p.body = std::move(body);
    p.updates = std::move(updates);
    return p;
  }
  Packet To(const Membership& m, Body body, std::vector<MemberUpdate> updates = {}) {
    return To(m.name(), m.boot_id(), std::move(body), std::move(updates));
  }
};

Peer MakePeer(const std::string& name, int host, uint64_t boot = kBootB) {
  std::string ip = "10.0.0." + std::to_string(host);
  return Peer{MakeMemberInfo(name, ip + ":7946", ip + ":7947"), boot};
}

MemberUpdate Claim(MemberState s, const std::string& name, uint64_t inc, int host = 9) {
  std::string ip = "10.0.0." + std::to_string(host);
  MemberUpdate u{s, inc, MakeMemberInfo(name, ip + ":7946", ip + ":7947"), 0, {}};
  if (s == MemberState::kAlive) u.boot = 77;
  if (s == MemberState::kSuspect || s == MemberState::kDead) u.from = "someone";
  return u;
}

// ---- Packet by packet --------------------------------------------------------

TEST_CASE("Membership: a peer that speaks to us is added alive and its root compared",
          "[membership]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  a.SetLocalState(Root(1), 10, 100);
  Peer b = MakePeer("b", 2);
  Actions out;
  a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Gossip{Root(2), 12, 200}), &out);
  auto v = a.Find("b");
  REQUIRE(v);
  CHECK(v->state == MemberState::kAlive);
  CHECK(v->has_root);
  CHECK(v->root == Root(2));
  CHECK(v->last_heard_ms == 1000);
  REQUIRE(out.events.size() == 1);
  CHECK(!out.events[0].from);
  REQUIRE(out.root_differs.size() == 1);
  CHECK(out.root_differs[0].member == "b");
  CHECK(out.root_differs[0].repair_addr == "10.0.0.2:7947");
  CHECK(a.broadcasts().Find("b") != nullptr);  // a newcomer is gossiped on

  out.Clear();
  a.HandlePacket(1100, "10.0.0.2:7946", b.To(a, Gossip{Root(1), 10, 300}), &out);
  CHECK(out.root_differs.empty());  // same root as ours
}

TEST_CASE("Membership: PushState gossips the new root at once to fanout members",
          "[membership]") {
  MembershipConfig c = Config("a", "10.0.0.1:7946", kBootA);
  c.gossip_fanout = 2;
  Membership a(c);
  a.SetLocalState(Root(1), 10, 100);
  Actions out;
  a.PushState(0, &out);  // before the first Tick: nothing
  CHECK(out.sends.empty());
  a.Tick(1, &out);
  Peer b = MakePeer("b", 2), d = MakePeer("d", 3), e = MakePeer("e", 4);
  for (Peer* p : {&b, &d, &e}) {
    a.HandlePacket(2, p->info->gossip_addr, p->To(a, Gossip{Root(1), 10, 100}), &out);
  }
  out.Clear();
  a.SetLocalState(Root(9), 11, 101);
  a.PushState(3, &out);
  int gossips = 0;
  for (const Outgoing& o : out.sends) {
    if (auto* g = std::get_if<Gossip>(&o.packet.body)) {
      CHECK(g->root == Root(9));
      ++gossips;
    }
  }
  CHECK(gossips == 2);
  out.Clear();
  a.Leave(4, &out);
  out.Clear();
  a.PushState(5, &out);
  CHECK(out.sends.empty());
}

TEST_CASE("Membership: a replayed packet changes nothing", "[membership][replay]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  a.SetLocalState(Root(1), 10, 100);
  Peer b = MakePeer("b", 2);
  Packet g1 = b.To(a, Gossip{Root(2), 1, 1});
  Packet g2 = b.To(a, Gossip{Root(3), 2, 2});
  Packet ping = b.To(a, Ping{42, 0, MemberState::kAlive});
  Actions out;
  a.HandlePacket(1000, "10.0.0.2:7946", g1, &out);
  a.HandlePacket(1001, "10.0.0.2:7946", g2, &out);
  a.HandlePacket(1002, "10.0.0.2:7946", ping, &out);
  REQUIRE(out.root_differs.size() == 2);
  REQUIRE(out.sends.size() == 1);  // the ack
  const uint64_t in_before = a.stats().packets_in;

  SECTION("the same packet again, in the same run: dropped by the window") {
    out.Clear();
    a.HandlePacket(2000, "10.0.0.2:7946", g1, &out);
    a.HandlePacket(2001, "10.0.0.2:7946", g2, &out);
    a.HandlePacket(2002, "10.0.0.2:7946", ping, &out);
    CHECK(out.sends.empty());  // no second ack
    CHECK(out.root_differs.empty());
    CHECK(out.events.empty());
    CHECK(a.Find("b")->root == Root(3));  // not rolled back to g1's root
    CHECK(a.Find("b")->last_heard_ms == 1002);
    CHECK(a.stats().drop(Drop::kReplay) == 3);
    CHECK(a.stats().packets_in == in_before + 3);
  }
  SECTION("a packet the sender addressed to another node") {
    Packet for_c = b.To("c", 123, Gossip{Root(4), 3, 3});
    out.Clear();
    a.HandlePacket(2000, "10.0.0.2:7946", for_c, &out);
    CHECK(a.Find("b")->root == Root(3));
    CHECK(out.root_differs.empty());
    CHECK(a.stats().drop(Drop::kNotForUs) == 1);
  }
  SECTION("a packet from an older run of the sender") {
    Peer b_old = MakePeer("b", 2, kBootB - (uint64_t{1} << 16));
    Packet old = b_old.To(a, Gossip{Root(5), 4, 4}, {Claim(MemberState::kAlive, "x", 3)});
    out.Clear();
    a.HandlePacket(2000, "10.0.0.2:7946", old, &out);
    CHECK(a.Find("b")->root == Root(3));
    CHECK(!a.Find("x"));
    CHECK(out.root_differs.empty());
    CHECK(a.stats().drop(Drop::kStaleBoot) == 1);
  }
  SECTION("a packet to our previous run, after we restarted") {
    Membership a2(Config("a", "10.0.0.1:7946", kBootA + (uint64_t{1} << 16)));
    out.Clear();
    a2.HandlePacket(2000, "10.0.0.2:7946", g2, &out);
    a2.HandlePacket(2001, "10.0.0.2:7946", ping, &out);
    CHECK(!a2.Find("b"));
    CHECK(a2.stats().drop(Drop::kNotForUs) == 2);
    // The ping is answered bare, so b learns a2's boot id from the header.
    REQUIRE(out.sends.size() == 2);  // a challenge (for the gossip) and the ack
    const Packet& ack = out.sends[1].packet;
    CHECK(std::holds_alternative<Ack>(ack.body));
    CHECK(ack.boot_id == a2.boot_id());
    CHECK(ack.updates.empty());
  }
}

TEST_CASE("Membership: the replay window accepts reordering, drops what is 64 behind",
          "[membership][replay]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  Peer b = MakePeer("b", 2);
  std::vector<Packet> ps;
  for (int i = 0; i < 80; ++i) ps.push_back(b.To(a, Gossip{Root(2), 0, 0}));
  Actions out;
  a.HandlePacket(1000, "10.0.0.2:7946", ps[79], &out);  // seq 80
  a.HandlePacket(1001, "10.0.0.2:7946", ps[40], &out);  // seq 41: 39 behind, late but fresh
  a.HandlePacket(1002, "10.0.0.2:7946", ps[10], &out);  // seq 11: 69 behind
  CHECK(a.stats().drop(Drop::kTooOld) == 1);
  CHECK(a.stats().drop(Drop::kReplay) == 0);
  a.HandlePacket(1003, "10.0.0.2:7946", ps[40], &out);
  CHECK(a.stats().drop(Drop::kReplay) == 1);
}

TEST_CASE("Membership: a restarted sender, sequence back at 1, is heard at once",
          "[membership][replay]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  Peer b = MakePeer("b", 2);
  Actions out;
  for (int i = 0; i < 10; ++i) a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Gossip{}), &out);
  Peer b2 = MakePeer("b", 2, kBootB + (uint64_t{1} << 16));  // seq starts over
  b2.inc = 0;                                                // and even a lower incarnation
  out.Clear();
  a.HandlePacket(2000, "10.0.0.2:7946", b2.To(a, Gossip{Root(9), 1, 1}), &out);
  CHECK(a.Find("b")->root == Root(9));
  CHECK(a.stats().drop(Drop::kReplay) + a.stats().drop(Drop::kStaleBoot) == 0);
  // Our probes now address the new run, and tell it the incarnation we know,
  // so it refutes past it.
  out.Clear();
  for (uint64_t t = 2000; t < 5000 && out.sends.empty(); t += 10) a.Tick(t, &out);
  REQUIRE(!out.sends.empty());
  const Packet& p = out.sends[0].packet;
  CHECK(p.to == "b");
  CHECK(p.to_boot == b2.boot);
}

TEST_CASE("Membership: an old incarnation cannot bring a dead member back", "[membership]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  Peer b = MakePeer("b", 2);
  Actions out;
  a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Gossip{}, {Claim(MemberState::kAlive, "x", 5)}),
                 &out);
  REQUIRE(a.Find("x")->state == MemberState::kAlive);
  a.HandlePacket(1001, "10.0.0.2:7946", b.To(a, Gossip{}, {Claim(MemberState::kDead, "x", 5)}),
                 &out);
  REQUIRE(a.Find("x")->state == MemberState::kDead);
  for (uint64_t inc : {0, 4, 5}) {
    a.HandlePacket(1002, "10.0.0.2:7946", b.To(a, Gossip{}, {Claim(MemberState::kAlive, "x", inc)}),
                   &out);
    CHECK(a.Find("x")->state == MemberState::kDead);
  }
  // Nor can a suspicion at the same incarnation.
  a.HandlePacket(1003, "10.0.0.2:7946", b.To(a, Gossip{}, {Claim(MemberState::kSuspect, "x", 5)}),
                 &out);
  CHECK(a.Find("x")->state == MemberState::kDead);
  a.HandlePacket(1004, "10.0.0.2:7946", b.To(a, Gossip{}, {Claim(MemberState::kAlive, "x", 6)}),
                 &out);
  CHECK(a.Find("x")->state == MemberState::kAlive);
  CHECK(a.Find("x")->incarnation == 6);
}

TEST_CASE("Membership: claims about ourselves are refuted with a higher incarnation",
          "[membership]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  Peer b = MakePeer("b", 2);
  Actions out;
  REQUIRE(a.incarnation() == 1);
  SECTION("suspected in a piggybacked update") {
    a.HandlePacket(1000, "10.0.0.2:7946",
                   b.To(a, Gossip{}, {Claim(MemberState::kSuspect, "a", 1, 1)}), &out);
    CHECK(a.incarnation() == 2);
    const MemberUpdate* u = a.broadcasts().Find("a");
    REQUIRE(u != nullptr);
    CHECK(u->state == MemberState::kAlive);
    CHECK(u->incarnation == 2);
    CHECK(a.stats().refutations == 1);
  }
  SECTION("declared dead at a later incarnation than ours (we restarted)") {
    a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Gossip{}, {Claim(MemberState::kDead, "a", 7, 1)}),
                   &out);
    CHECK(a.incarnation() == 8);
  }
  SECTION("a ping from a prober that suspects us: the ack carries the refutation") {
    a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Ping{5, 1, MemberState::kSuspect}), &out);
    REQUIRE(out.sends.size() == 1);
    CHECK(out.sends[0].packet.incarnation == 2);
    CHECK(std::get<Ack>(out.sends[0].packet.body).probe_id == 5);
  }
  SECTION("a stale suspicion is ignored") {
    a.HandlePacket(1000, "10.0.0.2:7946",
                   b.To(a, Gossip{}, {Claim(MemberState::kSuspect, "a", 0, 1)}), &out);
    CHECK(a.incarnation() == 1);
  }
  SECTION("our name claimed from another address is reported, not outbid") {
    a.HandlePacket(1000, "10.0.0.2:7946",
                   b.To(a, Gossip{}, {Claim(MemberState::kAlive, "a", 9, 33)}), &out);
    CHECK(a.incarnation() == 1);
    REQUIRE(out.conflicts.size() == 1);
    CHECK(out.conflicts[0].claimed_addr == "10.0.0.33:7946");
    CHECK(a.stats().drop(Drop::kNameConflict) == 1);
  }
}

TEST_CASE("Membership: a live member's name claimed from another address is a conflict",
          "[membership]") {
  Membership a(Config("a", "10.0.0.1:7946", kBootA));
  Peer b = MakePeer("b", 2);
  Peer impostor = MakePeer("b", 3, kBootB + 5);
  impostor.inc = 9;
  Actions out;
  a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Gossip{Root(2), 0, 0}), &out);
  out.Clear();
  a.HandlePacket(1001, "10.0.0.3:7946", impostor.To(a, Gossip{Root(3), 0, 0}), &out);
  CHECK(a.Find("b")->gossip_addr == "10.0.0.2:7946");
  CHECK(a.Find("b")->root == Root(2));
  REQUIRE(out.conflicts.size() == 1);
  CHECK(out.conflicts[0].known_addr == "10.0.0.2:7946");
  // Once the holder is suspect, the claim (a move, a restart elsewhere) wins.
  a.HandlePacket(1002, "10.0.0.4:7946",
                 MakePeer("c", 4).To(a, Gossip{}, {Claim(MemberState::kSuspect, "b", 1)}), &out);
  REQUIRE(a.Find("b")->state == MemberState::kSuspect);
  impostor.inc = 10;
  a.HandlePacket(1003, "10.0.0.3:7946", impostor.To(a, Gossip{Root(3), 0, 0}), &out);
  CHECK(a.Find("b")->gossip_addr == "10.0.0.3:7946");
  CHECK(a.Find("b")->state == MemberState::kAlive);
}

TEST_CASE("Membership: seeds are retried with doubling backoff while none answers",
          "[membership]") {
  MembershipConfig c = Config("a", "10.0.0.1:7946", kBootA);
  c.seeds = {"10.0.0.50:7946", "10.0.0.51:7946"};
  c.join_retry_ms = 1000;
  c.join_retry_max_ms = 8000;
  Membership a(c);
  std::vector<uint64_t> times;
  for (uint64_t t = 0; t <= 60000; t = std::max(t + 1, a.NextTickMs())) {
    Actions out;
    a.Tick(t, &out);
    size_t to_seeds = 0;
    for (const Outgoing& o : out.sends) {
      if (o.to == "10.0.0.50:7946" || o.to == "10.0.0.51:7946") {
        ++to_seeds;
        CHECK(o.packet.to.empty());  // a join ping names no receiver
        CHECK(std::holds_alternative<Ping>(o.packet.body));
      }
    }
    if (to_seeds > 0) {
      CHECK(to_seeds == 2);  // every seed, each time
      times.push_back(t);
    }
  }
  REQUIRE(times.size() >= 6);
  std::vector<uint64_t> gaps;
  for (size_t i = 1; i < times.size(); ++i) gaps.push_back(times[i] - times[i - 1]);
  // 1 s, 2 s, 4 s, then capped at 8 s; each +-20% jitter.
  CHECK(gaps[0] >= 800);
  CHECK(gaps[0] <= 1200);
  CHECK(gaps[1] >= 1600);
  CHECK(gaps[1] <= 2400);
  CHECK(gaps[2] >= 3200);
  CHECK(gaps[2] <= 4800);
  for (size_t i = 3; i < gaps.size(); ++i) {
    CHECK(gaps[i] >= 6400);
    CHECK(gaps[i] <= 9600);
  }
  CHECK(!a.joined());
}

TEST_CASE("Membership: packets stay within the byte budget with the largest fields",
          "[membership][bounds]") {
  const std::string label(63, 'h');
  const std::string big_addr =
      label + "." + label + "." + label + "." + std::string(57, 'h') + ":65535";
  REQUIRE(big_addr.size() == kMaxAddrBytes);
  REQUIRE(IsValidHostPort(big_addr));
  MembershipConfig c = Config(std::string(63, 'a'), big_addr, kBootA);
  c.repair_addr = big_addr;
  c.max_broadcasts = 100000;
  Membership a(c);
  REQUIRE(c.max_packet_bytes == kMaxDatagramBytes - kSealOverhead);
  // Hundreds of members with maximal names and addresses, all queued.
  Peer b{MakeMemberInfo(std::string(63, 'b'), big_addr, big_addr), kBootB};
  Actions out;
  uint64_t now = 1000;
  for (int i = 0; i < 300; ++i) {
    std::string name = std::to_string(i) + std::string(60, 'm');
    name.resize(63);
    MemberUpdate u{MemberState::kAlive,
                   ~uint64_t{0},
                   MakeMemberInfo(name, big_addr, big_addr),
                   ~uint64_t{0},
                   {}};
    a.HandlePacket(now++, "10.0.0.2:7946", b.To(a.name(), a.boot_id(), Gossip{}, {u}), &out);
  }
  REQUIRE(a.broadcasts().size() > 200);
  out.Clear();
  size_t max_seen = 0, updates = 0;
  for (; now < 60000; now = std::max(now + 1, a.NextTickMs())) a.Tick(now, &out);
  REQUIRE(!out.sends.empty());
  for (const Outgoing& o : out.sends) {
    size_t size = EncodedSize(o.packet);
    CHECK(size <= kMaxDatagramBytes - kSealOverhead);
    max_seen = std::max(max_seen, size);
    updates += o.packet.updates.size();
  }
  CHECK(updates > 0);
  CHECK(max_seen + kSealOverhead > 1000);  // the packer fills the budget
}

TEST_CASE("Membership: the piggyback queue's bound holds under a flood of newcomers",
          "[membership][bounds]") {
  MembershipConfig c = Config("a", "10.0.0.1:7946", kBootA);
  c.max_broadcasts = 32;
  c.max_members = 500;
  Membership a(c);
  Peer b = MakePeer("b", 2);
  Actions out;
  for (int i = 0; i < 2000; ++i) {
    a.HandlePacket(1000, "10.0.0.2:7946",
                   b.To(a, Gossip{}, {Claim(MemberState::kAlive, "m" + std::to_string(i), 1)}),
                   &out);
    REQUIRE(a.broadcasts().size() <= 32);
  }
  CHECK(a.Members().size() == 500);
  CHECK(a.stats().drop(Drop::kTableFull) == 1501);  // b itself took one place
  CHECK(a.broadcasts().evicted() > 0);
}

TEST_CASE("Membership: a joiner pulls the seed's member list page by page", "[membership]") {
  MembershipConfig sc = Config("s", "10.0.0.1:7946", kBootA);
  Membership s(sc);
  Actions out;
  Peer b = MakePeer("b", 2);
  std::vector<MemberUpdate> many;
  for (int i = 0; i < 300; ++i)
    many.push_back(Claim(MemberState::kAlive, "m" + std::to_string(i), 1));
  s.Bootstrap(1000, many);
  REQUIRE(s.Members().size() == 300);

  MembershipConfig jc = Config("j", "10.0.0.3:7946", kBootB);
  jc.seeds = {"10.0.0.1:7946"};
  Membership j(jc);
  // Shuttle packets between the two by hand until quiet.
  std::vector<std::pair<std::string, Packet>> wire;  // (from, packet) to deliver
  auto deliver = [&](Membership& from, Actions& acts) {
    for (Outgoing& o : acts.sends) {
      if (o.to == "10.0.0.1:7946" || o.to == "10.0.0.3:7946") {
        wire.emplace_back(from.config().gossip_addr, std::move(o.packet));
      }
    }
    acts.Clear();
  };
  uint64_t now = 2000;
  out.Clear();
  j.Tick(now, &out);
  deliver(j, out);
  size_t pages = 0;
  while (!wire.empty() && now < 10000) {
    auto [from, p] = std::move(wire.front());
    wire.erase(wire.begin());
    if (std::holds_alternative<SyncPage>(p.body)) ++pages;
    Membership& to = from == "10.0.0.1:7946" ? j : s;
    to.HandlePacket(++now, from, p, &out);
    deliver(to, out);
  }
  CHECK(j.joined());
  CHECK(pages > 10);
  CHECK(j.Members().size() == 301);  // the 300 and the seed
  CHECK(s.Find("j").has_value());
  CHECK(j.stats().sync_pages_received == pages);
}

TEST_CASE("Membership: queued updates go out every broadcast interval, and only then",
          "[membership]") {
  MembershipConfig c = Config("a", "10.0.0.1:7946", kBootA);
  c.broadcast_interval_ms = 200;
  c.gossip_jitter_pct = 0;
  c.probe_interval_ms = 60000;  // keep probes and rounds out of the way
  c.gossip_interval_ms = 60000;
  c.sync_interval_ms = 0;
  Membership a(c);
  Peer b = MakePeer("b", 2);
  Actions out;
  a.HandlePacket(1000, "10.0.0.2:7946", b.To(a, Gossip{}), &out);  // b joins: news to spread
  a.Tick(1000, &out);
  out.Clear();
  // With a single other member, each flush carries the news to b until its
  // retransmissions are spent; then the flushes stop.
  std::vector<uint64_t> flushes;
  for (uint64_t t = 1001; t <= 30000; t = std::max(t + 1, a.NextTickMs())) {
    a.Tick(t, &out);
    for (const Outgoing& o : out.sends) {
      if (!o.packet.updates.empty()) flushes.push_back(t);
    }
    out.Clear();
  }
  REQUIRE(flushes.size() >= 2);
  for (size_t i = 1; i < flushes.size(); ++i) CHECK(flushes[i] - flushes[i - 1] == 200);
  CHECK(flushes.size() == static_cast<size_t>(RetransmitLimit(c.retransmit_mult, 2)));
  CHECK(a.broadcasts().empty());
}

// ---- Small clusters on the simulator ---------------------------------------------

SimOptions Small(size_t n) {
  SimOptions o;
  o.nodes = n;
  o.seed = 11;
  o.warm_start = true;
  return o;
}

TEST_CASE("Membership: nodes that know one seed all learn each other", "[membership][cluster]") {
  SimOptions o = Small(12);
  o.warm_start = false;
  SimCluster c(o);
  CHECK(c.RunUntil([&] { return c.Converged(); }, c.now() + 15000));
}

TEST_CASE("Membership: a silent member goes suspect, then dead, within the configured bounds",
          "[membership][cluster]") {
  const size_t n = 8;
  SimCluster c(Small(n));
  c.RunFor(5000);
  REQUIRE(c.Converged());
  const MembershipConfig& cfg = c.node(0).config();
  const uint64_t t0 = c.now();
  uint64_t first_suspect = 0, first_dead = 0;
  c.on_event([&](uint64_t now, size_t, const MemberEvent& e) {
    if (e.name != SimCluster::Name(n - 1)) return;
    if (e.to == MemberState::kSuspect && first_suspect == 0) first_suspect = now;
    if (e.to == MemberState::kDead && first_dead == 0) first_dead = now;
  });
  c.Pause(n - 1);
  // Each of the others probes every member once per round of n-1 periods; the
  // round under way may have passed it, so within two rounds and the failed
  // probe's period.
  const uint64_t probe_bound = (2 * (n - 1) + 1) * cfg.probe_interval_ms;
  const uint64_t min_ms = SuspicionMinMs(cfg.suspicion_mult, n, cfg.probe_interval_ms);
  const uint64_t max_ms = min_ms * cfg.suspicion_max_mult;
  const uint64_t spread = 5 * cfg.gossip_interval_ms;
  REQUIRE(c.RunUntil([&] { return c.AllSee(n - 1, MemberState::kDead); },
                     t0 + probe_bound + max_ms + spread, 10));
  INFO("suspect after " << first_suspect - t0 << " ms, dead after " << first_dead - t0
                        << " ms, all dead after " << c.now() - t0 << " ms");
  CHECK(first_suspect > t0);
  CHECK(first_suspect - t0 <= probe_bound);
  CHECK(first_dead - first_suspect >= min_ms);  // Lifeguard's minimum holds
  CHECK(first_dead - first_suspect <= max_ms);
}

TEST_CASE("Membership: a suspected member that answers refutes", "[membership][cluster]") {
  const size_t n = 8;
  SimOptions o = Small(n);
  o.base.suspicion_mult = 10;  // a long suspicion: ample time to refute
  SimCluster c(o);
  c.RunFor(3000);
  bool ever_dead = false;
  bool suspected = false;
  c.on_event([&](uint64_t, size_t, const MemberEvent& e) {
    if (e.name != SimCluster::Name(n - 1)) return;
    ever_dead |= e.to == MemberState::kDead;
    suspected |= e.to == MemberState::kSuspect;
  });
  // Nothing reaches it for a while (a one-way cut): its probers suspect it.
  c.net().SetGroup(n - 1, 1);
  c.net().Block(0, 1);
  REQUIRE(c.RunUntil([&] { return suspected; }, c.now() + 30000, 10));
  c.net().Heal();
  const uint64_t inc_before = c.node(n - 1).incarnation();
  REQUIRE(c.RunUntil([&] { return c.AllSee(n - 1, MemberState::kAlive); }, c.now() + 20000));
  CHECK(!ever_dead);
  CHECK(c.node(n - 1).stats().refutations >= 1);
  CHECK(c.node(n - 1).incarnation() > inc_before);
  CHECK(c.node(0).Find(SimCluster::Name(n - 1))->incarnation == c.node(n - 1).incarnation());
}

TEST_CASE("Membership: a healed partition reconverges", "[membership][cluster]") {
  const size_t n = 10;
  SimCluster c(Small(n));
  c.RunFor(3000);
  REQUIRE(c.Converged());
  for (size_t i = 0; i < n / 2; ++i) c.net().SetGroup(i, 1);
  c.net().BlockBoth(0, 1);
  REQUIRE(c.RunUntil(
      [&] {
        return c.StateOf(0, n - 1) == MemberState::kDead &&
               c.StateOf(n - 1, 0) == MemberState::kDead;
      },
      c.now() + 120000));
  c.RunFor(30000);
  c.net().Heal();
  CHECK(c.RunUntil([&] { return c.Converged(); }, c.now() + 60000));
}

TEST_CASE("Membership: a graceful leave propagates and is final", "[membership][cluster]") {
  const size_t n = 8;
  SimOptions o = Small(n);
  o.base.dead_reap_ms = 60000;
  SimCluster c(o);
  c.RunFor(3000);
  bool ever_dead = false;
  c.on_event([&](uint64_t, size_t, const MemberEvent& e) {
    ever_dead |= e.name == SimCluster::Name(3) && e.to == MemberState::kDead;
  });
  c.Leave(3);
  CHECK(c.node(3).state() == MemberState::kLeft);
  REQUIRE(c.RunUntil([&] { return c.AllSee(3, MemberState::kLeft); }, c.now() + 5000, 10));
  c.RunFor(1000);
  c.Kill(3);  // the process exits after leaving
  c.RunFor(50000);
  CHECK(c.AllSee(3, MemberState::kLeft));
  CHECK(!ever_dead);
  // And is forgotten after dead_reap_ms.
  c.RunFor(20000);
  for (size_t i = 0; i < n; ++i) {
    if (i != 3) CHECK(!c.StateOf(i, 3).has_value());
  }
}

TEST_CASE("Membership: a dead member rejoins with a higher incarnation", "[membership][cluster]") {
  const size_t n = 8;
  SimCluster c(Small(n));
  c.RunFor(3000);
  c.Kill(5);
  REQUIRE(c.RunUntil([&] { return c.AllSee(5, MemberState::kDead); }, c.now() + 120000));
  const uint64_t dead_inc = c.node(0).Find(SimCluster::Name(5))->incarnation;
  c.Restart(5, /*incarnation=*/0 + 1);  // a clock-less restart: incarnation 1, refutation lifts it
  REQUIRE(c.RunUntil([&] { return c.Converged(); }, c.now() + 30000));
  CHECK(c.node(5).incarnation() > dead_inc);
  CHECK(c.node(0).Find(SimCluster::Name(5))->incarnation == c.node(5).incarnation());
}

}  // namespace
}  // namespace gossync::core
