// Tombstone expiry and catch-up mode in a repair session (agent/core/
// catch_up.h, docs/tombstones.md): two sessions back to back through the
// real codec (tests/testutil/repair_harness.h), over in-memory datasets.
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "agent/core/catch_up.h"
#include "agent/core/hlc.h"
#include "agent/core/repair_session.h"
#include "tests/testutil/repair_harness.h"
#include "tests/unit/core/seed.h"

namespace gossync::testutil {
namespace {

using core::Entry;
using core::SyncMode;

constexpr uint64_t kDay = 24ull * 3600 * 1000;
constexpr uint64_t kTtl = 30 * kDay;

// How one side runs: its mode and, for catch-up, its sync point's counter.
struct Side {
  SyncMode mode = SyncMode::kCurrent;
  uint64_t sync_counter = 0;
  uint64_t ttl_ms = kTtl;
};

std::function<void(core::RepairOptions&)> Tune(const MemNode& n, uint64_t wall_ms, Side s) {
  const core::NodeId id = n.id();
  return [=](core::RepairOptions& o) {
    o.wall_ms = wall_ms;
    o.tombstone_ttl_ms = s.ttl_ms;
    o.sync_mode = s.mode;
    o.node_id = id;
    o.sync_counter = s.sync_counter;
  };
}

// One session, `a` initiating, at wall time `wall_ms`; both must finish.
struct Result {
  core::SessionStats a, b;
};
Result Sync(MemNode& a, MemNode& b, uint64_t wall_ms, Side sa = {}, Side sb = {},
            bool dry_run = false) {
  LinkOptions o;
  o.dry_run = dry_run;
  o.tune_a = Tune(a, wall_ms, sa);
  o.tune_b = Tune(b, wall_ms, sb);
  Link link(a, b, o);
  link.Run();
  INFO("a aborted: " << (link.a().aborted ? link.a().aborted->reason : "-"));
  INFO("b aborted: " << (link.b().aborted ? link.b().aborted->reason : "-"));
  REQUIRE_FALSE(link.stalled());
  REQUIRE(link.a().finished);
  REQUIRE(link.b().finished);
  return {link.a().finished->stats, link.b().finished->stats};
}

std::string Describe(const Entry* e) {
  if (e == nullptr) return "absent";
  return std::string(e->deleted ? "tombstone " : "") + e->vv.ToString() + " hlc " +
         std::to_string(core::Hlc::Millis(e->hlc)) + " " + e->origin;
}

// The paths where two datasets differ, both versions each.
std::string Differences(const MemDataset& a, const MemDataset& b) {
  std::string out;
  std::set<std::string> paths;
  for (const auto& [p, e] : a.entries()) paths.insert(p);
  for (const auto& [p, e] : b.entries()) paths.insert(p);
  for (const std::string& p : paths) {
    const Entry* x = a.Find(p);
    const Entry* y = b.Find(p);
    if (x && y && *x == *y) continue;
    out += "\n  " + p + ": " + Describe(x) + " | " + Describe(y);
  }
  return out;
}

// ---- Expired tombstones ----

TEST_CASE("Purge: an expired tombstone is not sent to a peer that lacks it, the holder purges it",
          "[purge_session]") {
  for (bool holder_initiates : {true, false}) {
    INFO("holder initiates: " << holder_initiates);
    MemNode holder("alpha", 1), purged("beta", 2);
    holder.WriteFile("keep", "k");
    holder.WriteFile("gone", "g");
    holder.Remove("gone");
    purged.CopyFrom(holder);
    REQUIRE(purged.data().Erase("gone"));  // its purge job ran first
    const uint64_t wall = holder.clock_ms() + kTtl + kDay;
    Result r = holder_initiates ? Sync(holder, purged, wall) : Sync(purged, holder, wall);
    const core::SessionStats& h = holder_initiates ? r.a : r.b;
    const core::SessionStats& p = holder_initiates ? r.b : r.a;
    CHECK(h.tombstones_purged == 1);
    CHECK(h.entries_sent == 0);
    CHECK(p.entries_received == 0);
    CHECK(holder.data().Find("gone") == nullptr);
    CHECK(purged.data().Find("gone") == nullptr);
    CHECK(holder.data().Root() == purged.data().Root());
  }
}

TEST_CASE("Purge: a tombstone within the ttl still travels to a peer that lacks it",
          "[purge_session]") {
  MemNode a("alpha", 1), b("beta", 2);
  a.WriteFile("gone", "g");
  a.Remove("gone");
  Result r = Sync(a, b, a.clock_ms() + kTtl - kDay);
  CHECK(r.a.tombstones_purged == 0);
  REQUIRE(b.data().Find("gone") != nullptr);
  CHECK(b.data().Find("gone")->deleted);
  CHECK(a.data().Root() == b.data().Root());
}

TEST_CASE("Purge: the side that lacks the path ignores an expired tombstone it is sent",
          "[purge_session]") {
  // The holder sends it: it has no ttl (an older agent), or its clock is behind.
  MemNode a("alpha", 1), b("beta", 2);
  a.WriteFile("gone", "g");
  a.Remove("gone");
  Result r = Sync(a, b, a.clock_ms() + kTtl + kDay, Side{.ttl_ms = 0}, Side{});
  CHECK(r.a.entries_sent == 1);
  CHECK(r.b.stale_ignored == 1);
  CHECK(b.data().Find("gone") == nullptr);
  CHECK(r.b.entries_applied == 0);
}

TEST_CASE("Purge: an expired tombstone still deletes an older live version the peer holds",
          "[purge_session]") {
  MemNode a("alpha", 1), b("beta", 2);
  a.WriteFile("gone", "g");
  b.CopyFrom(a);
  a.Remove("gone");
  for (bool a_initiates : {true, false}) {
    MemNode a2("alpha", 1), b2("beta", 2);
    a2.CopyFrom(a);
    b2.CopyFrom(b);
    const uint64_t wall = a.clock_ms() + kTtl + kDay;
    if (a_initiates) {
      Sync(a2, b2, wall);
    } else {
      Sync(b2, a2, wall);
    }
    REQUIRE(b2.data().Find("gone") != nullptr);
    CHECK(b2.data().Find("gone")->deleted);
    CHECK(a2.data().Root() == b2.data().Root());
  }
}

TEST_CASE("Purge: a catching-up node keeps its expired tombstones (and does not send them)",
          "[purge_session]") {
  MemNode a("alpha", 1), b("beta", 2);
  a.WriteFile("gone", "g");
  a.Remove("gone");
  b.CopyFrom(a);
  REQUIRE(b.data().Erase("gone"));
  Result r = Sync(a, b, a.clock_ms() + kTtl + kDay, Side{.mode = SyncMode::kCatchUp}, Side{});
  CHECK(r.a.tombstones_purged == 0);
  CHECK(r.a.entries_sent == 0);
  REQUIRE(a.data().Find("gone") != nullptr);
  CHECK(b.data().Find("gone") == nullptr);
}

// ---- Catch-up ----

// `cluster` stayed; `back` went away after syncing (its sync point: counter
// `sync`), for longer than the ttl. Meanwhile "deleted" was removed on the
// cluster and its tombstone purged; `back` changed "edited" and wrote "new"
// into its data dir before it returned.
struct Away {
  MemNode cluster{"alpha", 1};
  MemNode back{"beta", 2};
  uint64_t sync = 0;
  uint64_t wall = 0;
  Away() {
    MemNode o("origin", 9);
    for (const char* p : {"deleted", "edited", "kept", "dir/deleted", "dir/kept"}) {
      o.WriteFile(p, std::string("v1 of ") + p);
    }
    cluster.CopyFrom(o);
    back.CopyFrom(o);
    sync = back.counter();
    cluster.AdvanceClock(kDay);
    cluster.Remove("deleted");
    cluster.Remove("dir/deleted");
    REQUIRE(cluster.data().Erase("deleted"));
    REQUIRE(cluster.data().Erase("dir/deleted"));
    cluster.WriteFile("cluster-new", "made while beta was away");
    back.AdvanceClock(kTtl + 5 * kDay);
    back.WriteFile("edited", "v2 made while away");
    back.WriteFile("new", "made while away");
    wall = back.clock_ms() + kDay;
  }
  Side catch_up() const { return Side{.mode = SyncMode::kCatchUp, .sync_counter = sync}; }
};

TEST_CASE(
    "CatchUp: entries a current peer lacks and that were not changed since are taken as "
    "deleted; changes made while away are pushed",
    "[purge_session][catch_up]") {
  for (bool back_initiates : {true, false}) {
    INFO("returning node initiates: " << back_initiates);
    Away w;
    Result r = back_initiates ? Sync(w.back, w.cluster, w.wall, w.catch_up(), Side{})
                              : Sync(w.cluster, w.back, w.wall, Side{}, w.catch_up());
    const core::SessionStats& b = back_initiates ? r.a : r.b;
    CHECK(b.taken_as_deleted == 2);
    CHECK(b.tombstones_purged == 2);
    for (MemNode* n : {&w.cluster, &w.back}) {
      INFO(n->name());
      CHECK(n->data().Find("deleted") == nullptr);
      CHECK(n->data().Find("dir/deleted") == nullptr);
      REQUIRE(n->data().Content("edited") != nullptr);
      CHECK(*n->data().Content("edited") == "v2 made while away");
      REQUIRE(n->data().Content("new") != nullptr);
      CHECK(n->data().Content("cluster-new") != nullptr);
      CHECK(n->data().Content("kept") != nullptr);
    }
    CHECK(w.cluster.data().Root() == w.back.data().Root());
  }
}

TEST_CASE("CatchUp: HELLO announces the mode", "[purge_session][catch_up]") {
  for (SyncMode mode : {SyncMode::kCurrent, SyncMode::kCatchUp, SyncMode::kNew}) {
    MemNode a("alpha", 1), b("beta", 2);
    LinkOptions o;
    o.tune_a = Tune(a, a.clock_ms(), Side{.mode = mode});
    Link link(a, b, o);
    link.b().keep_received = true;
    link.Run();
    REQUIRE(link.b().finished);
    REQUIRE(!link.b().received.empty());
    const auto& hello = std::get<core::HelloMsg>(link.b().received.front());
    CHECK(hello.flags == core::HelloFlagsFor(mode));
    CHECK(link.b().session->peer_hello()->flags == core::HelloFlagsFor(mode));
  }
}

TEST_CASE("CatchUp: what a catching-up or new peer lacks is no evidence of a delete",
          "[purge_session][catch_up]") {
  for (SyncMode peer : {SyncMode::kCatchUp, SyncMode::kNew}) {
    INFO(core::SyncModeName(peer));
    Away w;
    Result r = Sync(w.back, w.cluster, w.wall, w.catch_up(), Side{.mode = peer});
    CHECK(r.a.taken_as_deleted == 0);
    CHECK(w.back.data().Content("deleted") != nullptr);
    if (peer == SyncMode::kNew) {
      // A new peer takes them (it cannot tell either).
      CHECK(w.cluster.data().Content("deleted") != nullptr);
      CHECK(w.cluster.data().Root() == w.back.data().Root());
    }
  }
}

TEST_CASE("CatchUp: what a returning node changed longer than the ttl ago (partitioned, not "
          "stopped) is pushed and taken",
          "[purge_session][catch_up]") {
  MemNode a("alpha", 1), b("beta", 2);
  b.WriteFile("old", "changed while partitioned");  // after its sync point (counter 0)
  const uint64_t wall = b.clock_ms() + kTtl + kDay;
  Result r = Sync(b, a, wall, Side{.mode = SyncMode::kCatchUp, .sync_counter = 0}, Side{});
  CHECK(r.a.taken_as_deleted == 0);
  CHECK(r.a.entries_sent == 1);
  REQUIRE(a.data().Content("old") != nullptr);
  CHECK(a.data().Root() == b.data().Root());
}

TEST_CASE("CatchUp: a dry run shows the entries it would take as deleted, and moves nothing",
          "[purge_session][catch_up]") {
  Away w;
  const core::Hash256 before = w.back.data().Root();
  Result r = Sync(w.back, w.cluster, w.wall, w.catch_up(), Side{}, /*dry_run=*/true);
  std::set<std::string> deletions;
  for (const core::DiffItem& d : r.a.diff.pull) {
    if (!d.remote) deletions.insert(d.path);
  }
  CHECK(deletions == std::set<std::string>{"deleted", "dir/deleted"});
  CHECK(r.a.taken_as_deleted == 0);
  CHECK(w.back.data().Root() == before);
}

TEST_CASE("CatchUp: without a ttl (0) nothing expires and nothing is taken as deleted",
          "[purge_session][catch_up]") {
  Away w;
  Side off = w.catch_up();
  off.ttl_ms = 0;
  Result r = Sync(w.back, w.cluster, w.wall, off, Side{.ttl_ms = 0});
  CHECK(r.a.taken_as_deleted == 0);
  CHECK(w.cluster.data().Content("deleted") != nullptr);  // resurrected, as before this rule
}

// ---- Property ----

// Three nodes; random changes; one node goes away for longer than the ttl
// while the others delete and purge; it returns in catch-up mode. Whatever
// was deleted while it was away stays deleted, what it wrote while away
// arrives, and the three converge.
TEST_CASE(
    "CatchUp: random changes with a node away past the ttl: no delete is undone, no write "
    "is lost",
    "[purge_session][catch_up][property]") {
  GOSSYNC_SEEDED_RNG(0x7b5e);
  for (int round = 0; round < 40; ++round) {
    MemNode a("alpha", 1), b("beta", 2), c("gamma", 3);
    auto path = [&] { return "f" + std::to_string(rng() % 30); };
    auto change = [&](MemNode& n) {
      n.AdvanceClock(1000);  // conflict copy names have a resolution of one second
      const std::string p = path();
      const Entry* e = n.data().Find(p);
      if (e && e->live() && rng() % 3 == 0) {
        n.Remove(p);
      } else {
        n.WriteFile(p, std::to_string(rng()));
      }
    };
    for (int i = 0; i < 30; ++i) change(rng() % 2 ? a : b);
    Sync(a, b, a.clock_ms());
    c.CopyFrom(a);  // c joins, in sync
    const uint64_t sync = c.counter();
    // c goes away. a and b go on, and their tombstones expire and are purged.
    std::set<std::string> deleted_meanwhile, written_away;
    for (int i = 0; i < 20; ++i) change(rng() % 2 ? a : b);
    Sync(a, b, a.clock_ms());
    a.AdvanceClock(kTtl + kDay);
    b.AdvanceClock(kTtl + kDay);
    c.AdvanceClock(kTtl + 2 * kDay);
    for (MemNode* n : {&a, &b}) {
      std::vector<std::string> tombs;
      for (const auto& [p, e] : n->data().entries()) {
        if (e.deleted) tombs.push_back(p);
      }
      for (const std::string& p : tombs) {
        if (c.data().Find(p) && c.data().Find(p)->live()) deleted_meanwhile.insert(p);
        n->data().Erase(p);
      }
    }
    for (int i = 0; i < 5; ++i) {
      const std::string p = "away" + std::to_string(rng() % 4);
      c.WriteFile(p, std::to_string(rng()));
      written_away.insert(p);
    }
    const uint64_t wall = c.clock_ms() + kDay;
    Side back{.mode = SyncMode::kCatchUp, .sync_counter = sync};
    if (rng() % 2) {
      Sync(c, a, wall, back, Side{});
    } else {
      Sync(a, c, wall, Side{}, back);
    }
    Sync(b, c, wall);
    Sync(a, b, wall);
    INFO("round " << round);
    INFO("a|b:" << Differences(a.data(), b.data()));
    INFO("a|c:" << Differences(a.data(), c.data()));
    REQUIRE(a.data().Root() == b.data().Root());
    REQUIRE(a.data().Root() == c.data().Root());
    for (const std::string& p : deleted_meanwhile) {
      INFO(p);
      const Entry* e = a.data().Find(p);
      CHECK((e == nullptr || e->deleted));
    }
    for (const std::string& p : written_away) CHECK(a.data().Content(p) != nullptr);
  }
}

}  // namespace
}  // namespace gossync::testutil
