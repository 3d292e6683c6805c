// The tombstone purge (agent/store/purge.h), the sync point in the index
// meta, and catch-up mode end to end on real replicas: SQLite, files in temp
// dirs, RepairSessions driven by RepairExecutor (tests/testutil/replica_pair.h).
#include "agent/store/purge.h"

#include <catch2/catch.hpp>
#include <set>

#include "agent/core/catch_up.h"
#include "agent/core/merkle_tree.h"
#include "tests/testutil/replica_pair.h"

namespace gossync::testutil {
namespace {

using core::SyncMode;

constexpr uint64_t kDay = 24ull * 3600 * 1000;
constexpr uint64_t kTtl = 30 * kDay;

std::set<std::string> Indexed(ReplicaNode& n, bool tombstones) {
  std::set<std::string> out;
  REQUIRE(n.replica()
              .index()
              .ForEach([&](const store::IndexRecord& r) {
                if (r.entry.deleted == tombstones) out.insert(r.entry.path);
                return Status::Ok();
              })
              .ok());
  return out;
}

// The tree a reopened replica loads from the index equals the one kept in step.
void RequireTreeMatchesIndex(ReplicaNode& n) {
  const core::Hash256 root = n.replica().root();
  const store::IndexCounts counts = n.replica().counts();
  n.Reopen();
  CHECK(n.replica().root() == root);
  CHECK(n.replica().counts().tombstones == counts.tombstones);
  CHECK(n.replica().counts().live() == counts.live());
}

// A full pass in steps of `rows` rows; returns the totals.
store::PurgeStepResult Pass(ReplicaNode& n, size_t rows, uint64_t now_ms, int* steps = nullptr) {
  store::PurgeOptions o;
  o.ttl_ms = kTtl;
  o.rows_per_step = rows;
  store::PurgeStepResult total;
  std::string cursor;
  int k = 0;
  do {
    Result<store::PurgeStepResult> r = store::PurgeStep(n.replica(), n.root(), now_ms, o, cursor);
    REQUIRE(r.ok());
    total.scanned += r->scanned;
    total.purged += r->purged;
    total.kept += r->kept;
    cursor = r->next;
    ++k;
  } while (!cursor.empty());
  if (steps) *steps = k;
  return total;
}

TEST_CASE("Purge: a pass removes exactly the tombstones older than the ttl, in bounded steps",
          "[purge]") {
  ReplicaNode n("alpha");
  for (int i = 0; i < 40; ++i) n.Write("f" + std::to_string(i), std::to_string(i));
  n.Mkdir("gone-dir");
  n.Scan();
  for (int i = 0; i < 40; i += 2) n.Remove("f" + std::to_string(i));
  n.Remove("gone-dir");
  n.Scan();  // 21 old tombstones
  n.clock_ms += kTtl + kDay;
  n.Remove("f1");
  n.Scan();  // one recent tombstone
  REQUIRE(n.replica().counts().tombstones == 22);

  int steps = 0;
  store::PurgeStepResult r = Pass(n, 7, n.clock_ms, &steps);
  CHECK(r.scanned == 41);
  CHECK(steps == 6);  // 41 rows, 7 a step
  CHECK(r.purged == 21);
  CHECK(r.kept == 0);
  CHECK(Indexed(n, true) == std::set<std::string>{"f1"});
  CHECK(n.replica().counts().tombstones == 1);
  CHECK(n.replica().counts().files == 19);
  RequireTreeMatchesIndex(n);

  SECTION("a second pass finds nothing more") { CHECK(Pass(n, 1000, n.clock_ms).purged == 0); }
  SECTION("a path purged and written again is a new entry") {
    n.Write("f0", "again");
    store::Changes c = n.Scan();
    REQUIRE(c.changed.size() == 1);
    CHECK(c.changed[0].old_digest == core::Hash256{});
  }
}

TEST_CASE("Purge: a directory tombstone whose directory is still on disk is kept", "[purge]") {
  ReplicaNode n("alpha");
  n.Mkdir("d");
  n.Write("d/x", "x");
  n.Scan();
  n.Remove("d");
  n.Scan();
  n.Mkdir("d");  // back on disk, not yet scanned
  n.clock_ms += kTtl + kDay;
  store::PurgeStepResult r = Pass(n, 100, n.clock_ms);
  CHECK(r.purged == 1);  // d/x
  CHECK(r.kept == 1);
  CHECK(Indexed(n, true) == std::set<std::string>{"d"});
}

TEST_CASE(
    "Purge: the sync point persists, only moves forward, and a catching-up node may not "
    "purge",
    "[purge][catch_up]") {
  ReplicaNode n("alpha");
  CHECK(n.replica().sync_point() == core::SyncPoint{});
  const uint64_t t0 = n.clock_ms;
  REQUIRE(n.replica().RecordSync({t0, 7}).ok());
  REQUIRE(n.replica().RecordSync({t0 - 5, 3}).ok());  // an older session finishing late
  CHECK(n.replica().sync_point() == core::SyncPoint{t0, 7});
  n.Reopen();
  CHECK(n.replica().sync_point() == core::SyncPoint{t0, 7});
  CHECK(store::MayPurge(n.replica(), t0 + kTtl - kDay, kTtl));
  CHECK_FALSE(store::MayPurge(n.replica(), t0 + kTtl - kDay + 1, kTtl));
  CHECK_FALSE(store::MayPurge(n.replica(), t0, 0));
  REQUIRE(n.replica().RecordSync({t0 + kTtl, 9}).ok());
  CHECK(store::MayPurge(n.replica(), t0 + kTtl + 1, kTtl));
}

TEST_CASE("Purge: PurgeTombstones removes only rows that still hold that tombstone", "[purge]") {
  ReplicaNode n("alpha");
  n.Write("a", "1");
  n.Write("b", "2");
  n.Scan();
  n.Remove("a");
  n.Remove("b");
  n.Scan();
  auto a = n.replica().Get("a");
  REQUIRE(a.ok());
  REQUIRE(a->has_value());
  const core::Hash256 a_digest = (*a)->digest;
  n.Write("b", "3");  // b is live again
  n.Scan();
  auto b = n.replica().Get("b");
  auto purged = n.replica().PurgeTombstones(
      {{"a", a_digest}, {"b", (*b)->digest}, {"missing", a_digest}, {"a", a_digest}});
  REQUIRE(purged.ok());
  CHECK(*purged == 1);
  CHECK(Indexed(n, true).empty());
  CHECK(Indexed(n, false) == std::set<std::string>{"b"});
  RequireTreeMatchesIndex(n);
}

// ---- Sessions on real replicas ----

struct SyncStats {
  core::SessionStats a, b;
};

SyncStats Session(ReplicaNode& a, ReplicaNode& b, SyncMode ma, SyncMode mb) {
  auto tune = [](ReplicaNode& n, SyncMode m) {
    return [&n, m](core::RepairOptions& o) {
      o.wall_ms = n.replica().WallNow();
      o.tombstone_ttl_ms = kTtl;
      o.sync_mode = m;
      o.node_id = n.replica().node_id();
      o.sync_counter = n.replica().sync_point().counter;
    };
  };
  PairOptions po;
  po.tune_a = tune(a, ma);
  po.tune_b = tune(b, mb);
  SessionPair pair(a, b, po);
  pair.Run();
  INFO("a: " << (pair.a().aborted ? pair.a().aborted->reason : "ok"));
  INFO("b: " << (pair.b().aborted ? pair.b().aborted->reason : "ok"));
  REQUIRE_FALSE(pair.stalled());
  REQUIRE(pair.a().finished);
  REQUIRE(pair.b().finished);
  return {pair.a().finished->stats, pair.b().finished->stats};
}

void RequireSameData(ReplicaNode& a, ReplicaNode& b) {
  auto fa = Fingerprint(a.data_dir());
  auto fb = Fingerprint(b.data_dir());
  INFO(FingerprintDiff(fa, fb));
  REQUIRE(fa == fb);
  REQUIRE(a.replica().root() == b.replica().root());
}

TEST_CASE(
    "CatchUp: on real replicas, a node back after the ttl removes what was deleted while "
    "it was away and pushes what it wrote",
    "[purge][catch_up]") {
  ReplicaNode cluster("alpha"), back("beta");
  cluster.Write("kept", "k");
  cluster.Write("deleted", "d");
  cluster.Mkdir("dir");
  cluster.Write("dir/deleted", "dd");
  cluster.Mkdir("gone");
  cluster.Write("gone/old", "o");
  cluster.Scan();
  Session(cluster, back, SyncMode::kNew, SyncMode::kNew);
  RequireSameData(cluster, back);
  REQUIRE(back.replica().RecordSync({back.replica().WallNow(), back.replica().counter()}).ok());

  // beta is stopped. On alpha: deletes, and the purge after the ttl.
  cluster.Remove("deleted");
  cluster.Remove("dir/deleted");
  cluster.Remove("gone");
  cluster.Scan();
  cluster.clock_ms += kTtl + kDay;
  CHECK(Pass(cluster, 1000, cluster.clock_ms).purged == 4);
  // Meanwhile files were written into beta's data dir; it restarts and scans.
  back.clock_ms += kTtl + 2 * kDay;
  back.Write("new", "written while away");
  back.Write("gone/new", "written into a directory deleted on the cluster");
  back.Scan();

  SyncStats s = Session(back, cluster, SyncMode::kCatchUp, SyncMode::kCurrent);
  CHECK(s.a.taken_as_deleted == 4);  // deleted, dir/deleted, gone, gone/old
  CHECK_FALSE(back.Exists("deleted"));
  CHECK_FALSE(back.Exists("dir/deleted"));
  CHECK_FALSE(back.Exists("gone/old"));
  CHECK(back.Exists("gone/new"));
  CHECK(cluster.Read("new") == "written while away");
  CHECK(cluster.Read("gone/new") == "written into a directory deleted on the cluster");
  CHECK(back.Exists("kept"));
  // "gone" stayed for gone/new and is live again; the next session (now
  // current) settles its version.
  Session(cluster, back, SyncMode::kCurrent, SyncMode::kCurrent);
  RequireSameData(cluster, back);
  CHECK(Indexed(back, true).empty());
  CHECK(Indexed(cluster, true).empty());
  store::Changes rescan = back.Scan();
  CHECK(rescan.changed.empty());
}

TEST_CASE(
    "CatchUp: on real replicas, an expired tombstone the peer lacks is purged in the "
    "session and not re-inserted",
    "[purge]") {
  ReplicaNode a("alpha"), b("beta");
  a.Write("x", "x");
  a.Scan();
  Session(a, b, SyncMode::kNew, SyncMode::kNew);
  a.Remove("x");
  a.Scan();
  Session(a, b, SyncMode::kCurrent, SyncMode::kCurrent);
  REQUIRE(Indexed(b, true) == std::set<std::string>{"x"});
  a.clock_ms += kTtl + kDay;
  b.clock_ms += kTtl + kDay;
  CHECK(Pass(b, 1000, b.clock_ms).purged == 1);  // b purged first
  SyncStats s = Session(b, a, SyncMode::kCurrent, SyncMode::kCurrent);
  CHECK(s.b.tombstones_purged == 1);
  CHECK(s.a.entries_received == 0);
  CHECK(Indexed(a, true).empty());
  CHECK(Indexed(b, true).empty());
  CHECK(a.replica().root() == b.replica().root());
}

}  // namespace
}  // namespace gossync::testutil
