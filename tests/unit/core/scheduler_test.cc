#include <catch2/catch.hpp>

#include "agent/core/scheduler.h"

namespace gossync::core {
namespace {

std::vector<std::string> Peers(const std::vector<SessionRequest>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.peer);
  return out;
}

TEST_CASE("RepairScheduler: a differing root starts one session per peer", "[scheduler]") {
  RepairScheduler s({});
  s.RootDiffers(0, "beta", "10.0.0.2:7947");
  s.RootDiffers(1, "beta", "10.0.0.2:7947");
  auto due = s.Due(1);
  REQUIRE(due.size() == 1);
  CHECK(due[0].peer == "beta");
  CHECK(due[0].repair_addr == "10.0.0.2:7947");
  s.RootDiffers(2, "beta", "10.0.0.2:7947");  // still running: nothing new
  CHECK(s.Due(2).empty());
  CHECK(s.running() == 1);
}

TEST_CASE("RepairScheduler: max_sessions bounds concurrency, oldest request first",
          "[scheduler]") {
  SchedulerConfig c;
  c.max_sessions = 2;
  RepairScheduler s(c);
  s.RootDiffers(5, "c", "c:1");
  s.RootDiffers(3, "b", "b:1");
  s.RootDiffers(4, "a", "a:1");
  CHECK(Peers(s.Due(10)) == std::vector<std::string>{"b", "a"});
  CHECK(s.Due(10).empty());
  s.Ended(11, "b", true, 0);
  CHECK(Peers(s.Due(11)) == std::vector<std::string>{"c"});
}

TEST_CASE("RepairScheduler: failures back off exponentially, success clears it", "[scheduler]") {
  SchedulerConfig c;
  c.base_backoff_ms = 1000;
  c.max_backoff_ms = 8000;
  uint64_t expected[] = {1000, 2000, 4000, 8000, 8000};
  RepairScheduler t(c);
  uint64_t now = 0;
  for (uint64_t backoff : expected) {
    t.RootDiffers(now, "beta", "b:1");
    auto due = t.Due(now);
    REQUIRE(due.size() == 1);
    t.Ended(now, "beta", false, 0.999999);
    t.RootDiffers(now, "beta", "b:1");
    CHECK(t.Due(now + backoff / 2 - 1).empty());
    REQUIRE(t.NextWakeMs().has_value());
    CHECK(*t.NextWakeMs() >= now + backoff / 2);
    CHECK(*t.NextWakeMs() <= now + backoff);
    now += backoff;
  }
  REQUIRE(t.Due(now).size() == 1);
  t.Ended(now, "beta", true, 0);
  CHECK(t.peers().at("beta").failures == 0);
  t.RootDiffers(now + c.min_interval_ms, "beta", "b:1");
  CHECK(t.Due(now + c.min_interval_ms).size() == 1);
}

TEST_CASE("RepairScheduler: a manual sync skips the backoff", "[scheduler]") {
  RepairScheduler s({});
  s.RootDiffers(0, "beta", "b:1");
  REQUIRE(s.Due(0).size() == 1);
  s.Ended(0, "beta", false, 0.5);
  s.RootDiffers(1, "beta", "b:1");
  CHECK(s.Due(1).empty());
  s.Manual(2, "beta", "b:1");
  auto due = s.Due(2);
  REQUIRE(due.size() == 1);
  CHECK(due[0].manual);
}

TEST_CASE("RepairScheduler: an inbound session blocks an outbound one with the same peer",
          "[scheduler]") {
  SchedulerConfig c;
  c.max_sessions = 1;
  RepairScheduler s(c);
  CHECK(s.InboundStarted(0, "beta"));
  CHECK_FALSE(s.InboundStarted(0, "beta"));
  CHECK_FALSE(s.InboundStarted(0, "gamma"));  // no slot left
  s.RootDiffers(0, "beta", "b:1");
  CHECK(s.Due(0).empty());
  s.Ended(1, "beta", true, 0);
  CHECK(s.running() == 0);
}

TEST_CASE("RepairScheduler: when both sides dial at once, the first name's session is kept",
          "[scheduler]") {
  SchedulerConfig c;
  c.max_sessions = 1;
  RepairScheduler alpha(c), beta(c);
  alpha.RootDiffers(0, "beta", "b:1");
  beta.RootDiffers(0, "alpha", "a:1");
  REQUIRE(alpha.Due(0).size() == 1);
  REQUIRE(beta.Due(0).size() == 1);
  // Each receives the other's connection while its own session runs.
  CHECK_FALSE(alpha.InboundStarted(1, "beta"));
  CHECK_FALSE(alpha.YieldToInbound("alpha", "beta"));  // alpha's session is kept
  CHECK_FALSE(beta.InboundStarted(1, "alpha"));
  CHECK(beta.YieldToInbound("beta", "alpha"));  // beta's gives way
  CHECK(beta.running() == 0);
  // The dropped outbound session's end counts no failure and backs nothing off.
  beta.Ended(1, "alpha", false, 0);
  CHECK(beta.peers().at("alpha").failures == 0);
  CHECK(beta.peers().at("alpha").not_before_ms == 0);
  CHECK(beta.InboundStarted(1, "alpha"));
  CHECK(beta.running() == 1);
  // An inbound session never yields to another inbound one.
  RepairScheduler gamma(c);
  CHECK(gamma.InboundStarted(0, "alpha"));
  CHECK_FALSE(gamma.YieldToInbound("gamma", "alpha"));
}

}  // namespace
}  // namespace gossync::core
