// The membership protocol at cluster scale, on the simulator: 50 nodes, lossy
// and partitioned networks, minutes of simulated time in a second or two.
#include <catch2/catch.hpp>

#include "tests/testutil/sim_cluster.h"

namespace gossync::testing {
namespace {

using core::MemberEvent;
using core::MemberState;

constexpr size_t kNodes = 50;

SimOptions Options(uint64_t seed, double loss = 0.0) {
  SimOptions o;
  o.nodes = kNodes;
  o.seed = seed;
  o.link.loss = loss;
  o.seed_count = 3;
  return o;
}

// A run with every kind of trouble; its trace hash.
uint64_t EventfulRun(uint64_t seed) {
  SimOptions o = Options(seed, 0.05);
  o.nodes = 30;
  o.link.duplicate = 0.02;
  o.link.delay_mean_extra_ms = 20;
  o.stagger_ms = 100;
  SimCluster c(o);
  c.RunFor(20000);
  for (size_t i = 0; i < 10; ++i) c.net().SetGroup(i, 1);
  c.net().BlockBoth(0, 1);
  c.RunFor(30000);
  c.net().Heal();
  c.Kill(20);
  c.RunFor(30000);
  c.Restart(20);
  c.Leave(25);
  c.RunFor(20000);
  return c.TraceHash() ^ (c.events() << 1);
}

TEST_CASE("Simulator: the same seed gives the same event trace", "[sim]") {
  const uint64_t a = EventfulRun(1234);
  CHECK(EventfulRun(1234) == a);
  CHECK(EventfulRun(1235) != a);
}

TEST_CASE("Simulator: 50 nodes that know three seeds all learn each other", "[sim]") {
  SimOptions o = Options(1);
  o.stagger_ms = 20;  // started within a second
  SimCluster c(o);
  REQUIRE(c.RunUntil([&] { return c.Converged(); }, c.now() + 30000));
  INFO("converged after " << c.now() - 1000 << " ms");
  CHECK(c.now() - 1000 <= 30000);
}

TEST_CASE("Simulator: a killed node is detected dead by every node within the bound", "[sim]") {
  SimOptions o = Options(2, 0.01);
  o.warm_start = true;
  SimCluster c(o);
  c.RunFor(10000);
  const core::MembershipConfig& cfg = c.node(0).config();
  const uint64_t min_ms = core::SuspicionMinMs(cfg.suspicion_mult, kNodes, cfg.probe_interval_ms);
  const uint64_t max_ms = min_ms * cfg.suspicion_max_mult;
  const size_t victim = 17;
  const uint64_t t0 = c.now();
  c.Kill(victim);
  // Probed within a few periods (49 probers), then at most the longest
  // suspicion, then a few rounds to spread the verdict.
  const uint64_t bound = 10 * cfg.probe_interval_ms + max_ms + 10 * cfg.gossip_interval_ms;
  REQUIRE(c.RunUntil([&] { return c.AllSee(victim, MemberState::kDead); }, t0 + bound, 10));
  INFO("all saw it dead after " << c.now() - t0 << " ms; bound " << bound << " ms");
  CHECK(c.now() - t0 >= min_ms);
}

TEST_CASE("Simulator: no false deaths at 5% packet loss over ten minutes", "[sim]") {
  const uint64_t seed = GENERATE(3, 30, 300);
  SimOptions o = Options(seed, 0.05);
  o.warm_start = true;
  SimCluster c(o);
  uint64_t suspected = 0, dead = 0;
  c.on_event([&](uint64_t, size_t, const MemberEvent& e) {
    suspected += e.to == MemberState::kSuspect;
    dead += e.to == MemberState::kDead;
  });
  c.RunFor(600000);
  uint64_t refutations = 0;
  for (size_t i = 0; i < kNodes; ++i) refutations += c.node(i).stats().refutations;
  INFO("seed " << seed << ": " << suspected << " suspicions seen, " << refutations
               << " refutations");
  CHECK(dead == 0);
  CHECK(suspected > 0);  // the loss did bite; the protocol recovered
  CHECK(refutations > 0);
  // Converged once the last refutations spread.
  CHECK(c.RunUntil([&] { return c.Converged(); }, c.now() + 30000));
}

TEST_CASE("Simulator: a symmetric partition heals", "[sim]") {
  SimOptions o = Options(4);
  o.warm_start = true;
  SimCluster c(o);
  c.RunFor(5000);
  for (size_t i = 0; i < kNodes / 2; ++i) c.net().SetGroup(i, 1);
  c.net().BlockBoth(0, 1);
  // Each side declares the other dead.
  REQUIRE(c.RunUntil(
      [&] {
        for (size_t i = 0; i < kNodes; ++i) {
          size_t other = i < kNodes / 2 ? kNodes - 1 : 0;
          if (c.StateOf(i, other) != MemberState::kDead) return false;
        }
        return true;
      },
      c.now() + 120000));
  c.RunFor(30000);
  c.net().Heal();
  const uint64_t t0 = c.now();
  REQUIRE(c.RunUntil([&] { return c.Converged(); }, t0 + 60000));
  INFO("reconverged " << c.now() - t0 << " ms after the heal");
}

TEST_CASE("Simulator: a partition that outlives the reap time heals through the seeds", "[sim]") {
  SimOptions o = Options(5);
  o.warm_start = true;
  o.base.dead_reap_ms = 20000;
  o.base.seed_rejoin_ms = 10000;
  SimCluster c(o);
  c.RunFor(5000);
  // Seeds 0..2 on both sides: 0 and 1 in group 1 with half the cluster.
  for (size_t i = 0; i < kNodes; ++i) c.net().SetGroup(i, i % 2 == 0 ? 1 : 0);
  c.net().BlockBoth(0, 1);
  c.RunFor(120000);  // dead, then forgotten
  CHECK(!c.StateOf(0, 1).has_value());
  c.net().Heal();
  CHECK(c.RunUntil([&] { return c.Converged(); }, c.now() + 120000));
}

TEST_CASE("Simulator: a one-way partition heals", "[sim]") {
  SimOptions o = Options(6);
  o.warm_start = true;
  SimCluster c(o);
  c.RunFor(5000);
  for (size_t i = 0; i < 10; ++i) c.net().SetGroup(i, 1);
  c.net().Block(0, 1);  // the 10 hear nothing; the 40 hear them
  c.RunFor(60000);
  c.net().Heal();
  const uint64_t t0 = c.now();
  REQUIRE(c.RunUntil([&] { return c.Converged(); }, t0 + 60000));
  INFO("reconverged " << c.now() - t0 << " ms after the heal");
}

TEST_CASE("Simulator: duplicated packets are dropped as replays and change nothing", "[sim]") {
  SimOptions o = Options(7);
  o.warm_start = true;
  o.link.duplicate = 0.2;
  o.link.delay_mean_extra_ms = 30;
  SimCluster c(o);
  uint64_t changes = 0;
  c.on_event([&](uint64_t, size_t, const MemberEvent&) { ++changes; });
  c.RunFor(60000);
  uint64_t replays = 0;
  for (size_t i = 0; i < kNodes; ++i) replays += c.node(i).stats().drop(core::Drop::kReplay);
  CHECK(replays > 0);
  CHECK(replays <= c.net().counters().duplicated);
  CHECK(changes == 0);
  CHECK(c.Converged());
}

}  // namespace
}  // namespace gossync::testing
