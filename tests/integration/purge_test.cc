// Tombstone purge and catch-up mode with real agents (DESIGN.md section 1,
// docs/tombstones.md): a node stopped for longer than tombstone_ttl must not
// bring back what was deleted and purged meanwhile, and what was written into
// its data dir while it was stopped must still spread. The ttl is the
// shortest the config allows (60 s), so the test takes a little over a minute.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/integration/ops_cluster.h"
#include "tests/testutil/cluster.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

using ops::OpsCluster;

std::string Mode(const Agent& a) {
  nlohmann::json s = a.Status();
  if (!s.contains("sync_state")) return "";
  return s["sync_state"]["mode"];
}

uint64_t Tombstones(const Agent& a) {
  nlohmann::json s = a.Status();
  return s.contains("tombstones") ? s["tombstones"].get<uint64_t>() : ~uint64_t{0};
}

TEST_CASE(
    "Purge: a node stopped for longer than the ttl does not bring deleted files back, and "
    "what it wrote while stopped spreads",
    "[integration][purge][slow]") {
  OpsCluster c(3, [](int, AgentOptions& o) { o.extra_toml = "tombstone_ttl_s = 60\n"; });
  for (auto& a : c.agents) a->Start();
  for (auto& a : c.agents) REQUIRE(a->WaitReady());
  Agent& back = c[2];
  MakeDirs(c[0].data_dir() + "/dir");
  WriteFile(c[0].data_dir() + "/keep.txt", "kept");
  WriteFile(c[0].data_dir() + "/doomed.txt", "deleted while cnode is away");
  WriteFile(c[0].data_dir() + "/dir/doomed.txt", "deleted too");
  WriteFile(c[0].data_dir() + "/edited.txt", "v1");
  if (!WaitFor([&] { return c.Converged(c.All()); }, seconds(20))) FAIL(c.Diagnose());
  // Every node has synced with a current (or, at first, new) peer.
  if (!WaitFor(
          [&] {
            return Mode(c[0]) == "current" && Mode(c[1]) == "current" && Mode(back) == "current";
          },
          seconds(30))) {
    FAIL(c.Diagnose());
  }

  REQUIRE(back.Stop() == 0);
  fs::remove(c[0].data_dir() + "/doomed.txt");
  fs::remove(c[1].data_dir() + "/dir/doomed.txt");
  // The deletes spread to the two running nodes, then their tombstones
  // expire and are purged there.
  if (!WaitFor(
          [&] {
            return c.Converged({&c[0], &c[1]}) && !fs::exists(c[1].data_dir() + "/doomed.txt") &&
                   !fs::exists(c[0].data_dir() + "/dir/doomed.txt");
          },
          seconds(20))) {
    FAIL(c.Diagnose());
  }
  REQUIRE(Tombstones(c[0]) == 2);
  if (!WaitFor([&] { return Tombstones(c[0]) == 0 && Tombstones(c[1]) == 0; }, seconds(120))) {
    FAIL(c.Diagnose());
  }
  // The first node to expire them purges them with its purge job; the other
  // may purge its copies the same way or when a session meets them.
  auto purged = [](Agent& a) { return a.Status()["sync_state"]["tombstones_purged"].get<int>(); };
  CHECK(purged(c[0]) + purged(c[1]) >= 2);

  // Written into the stopped node's data dir: a new file, an edit.
  WriteFile(back.data_dir() + "/written-while-away.txt", "from cnode");
  WriteFile(back.data_dir() + "/edited.txt", "v2 from cnode");
  back.Start();
  REQUIRE(back.WaitReady());
  CHECK(back.log().find("sync_mode mode=catch_up") != std::string::npos);

  if (!WaitFor([&] { return c.Converged(c.All()); }, seconds(30))) FAIL(c.Diagnose());
  for (Agent* a : c.All()) {
    INFO(a->name());
    CHECK_FALSE(fs::exists(a->data_dir() + "/doomed.txt"));
    CHECK_FALSE(fs::exists(a->data_dir() + "/dir/doomed.txt"));
    CHECK(ReadFile(a->data_dir() + "/written-while-away.txt") == "from cnode");
    CHECK(ReadFile(a->data_dir() + "/edited.txt") == "v2 from cnode");
    CHECK(ReadFile(a->data_dir() + "/keep.txt") == "kept");
  }
  if (!WaitFor([&] { return Mode(back) == "current"; }, seconds(20))) FAIL(c.Diagnose());
  CHECK(back.log().find("catch_up_done") != std::string::npos);

  // And it stays that way: a full rescan on the returning node and a few
  // more gossip rounds change nothing.
  REQUIRE(back.Stop() == 0);
  back.Start();
  REQUIRE(back.WaitReady());
  if (!WaitFor([&] { return c.Converged(c.All()); }, seconds(20))) FAIL(c.Diagnose());
  for (Agent* a : c.All()) CHECK_FALSE(fs::exists(a->data_dir() + "/doomed.txt"));
  CHECK(Mode(back) == "current");
}

}  // namespace
}  // namespace gossync::testutil
