#include "agent/core/hlc.h"

#include <catch2/catch.hpp>
#include <random>

#include "tests/unit/core/seed.h"

namespace gossync::core {
namespace {

constexpr uint64_t kT = 1'764'151'700'000;  // 2025-11-26, in ms

TEST_CASE("Hlc: Pack, Millis and Logical round trip", "[hlc]") {
  uint64_t t = Hlc::Pack(kT, 42);
  CHECK(Hlc::Millis(t) == kT);
  CHECK(Hlc::Logical(t) == 42);
  CHECK(Hlc::Pack(1, 0) == 0x10000);
}

TEST_CASE("Hlc: follows the wall clock when it moves forward", "[hlc]") {
  Hlc c;
  CHECK(c.Now(kT) == Hlc::Pack(kT, 0));
  CHECK(c.Now(kT) == Hlc::Pack(kT, 1));
  CHECK(c.Now(kT + 5) == Hlc::Pack(kT + 5, 0));
  CHECK(c.last() == Hlc::Pack(kT + 5, 0));
}

TEST_CASE("Hlc: stays monotonic when the wall clock steps backwards", "[hlc]") {
  Hlc c;
  uint64_t a = c.Now(kT);
  uint64_t b = c.Now(kT - 60'000);  // NTP stepped back a minute
  uint64_t d = c.Now(0);
  CHECK(b > a);
  CHECK(d > b);
  CHECK(Hlc::Millis(d) == kT);
  CHECK(Hlc::Logical(d) == 2);
  // A restarted node resumes from its persisted last timestamp.
  Hlc restarted(d);
  CHECK(restarted.Now(kT - 1) > d);
}

TEST_CASE("Hlc: a full logical counter carries into the milliseconds", "[hlc]") {
  Hlc c(Hlc::Pack(kT, 0xfffe));
  CHECK(c.Now(kT) == Hlc::Pack(kT, 0xffff));
  uint64_t t = c.Now(kT);
  CHECK(t == Hlc::Pack(kT + 1, 0));
  CHECK(c.Now(kT + 1) == Hlc::Pack(kT + 1, 1));
  // 70,000 events in one millisecond stay strictly increasing.
  Hlc burst;
  uint64_t prev = 0;
  for (int i = 0; i < 70'000; ++i) {
    uint64_t now = burst.Now(kT);
    REQUIRE(now > prev);
    prev = now;
  }
  CHECK(Hlc::Millis(prev) == kT + 1);
}

TEST_CASE("Hlc: Update with a remote ahead moves past it", "[hlc]") {
  Hlc c;
  c.Now(kT);
  uint64_t remote = Hlc::Pack(kT + 500, 7);
  uint64_t t = c.Update(remote, kT);
  CHECK(t == Hlc::Pack(kT + 500, 8));
  CHECK(c.Now(kT + 1) == Hlc::Pack(kT + 500, 9));  // our clock has not caught up yet
  CHECK(c.Now(kT + 501) == Hlc::Pack(kT + 501, 0));
}

TEST_CASE("Hlc: Update with a remote behind behaves as Now", "[hlc]") {
  Hlc c;
  c.Now(kT);
  CHECK(c.Update(Hlc::Pack(kT - 1000, 3), kT + 10) == Hlc::Pack(kT + 10, 0));
  CHECK(c.Update(Hlc::Pack(kT - 1000, 3), kT + 10) == Hlc::Pack(kT + 10, 1));
  CHECK(c.Update(Hlc::Pack(kT + 10, 1), kT + 10) == Hlc::Pack(kT + 10, 2));
  CHECK(c.Update(Hlc::Pack(kT + 10, 9), kT + 10) == Hlc::Pack(kT + 10, 10));
}

TEST_CASE("Hlc: a runaway remote beyond max_ahead is ignored", "[hlc]") {
  Hlc c;
  c.Now(kT);
  const uint64_t max_ahead = 60'000;
  uint64_t runaway = Hlc::Pack(kT + max_ahead + 1, 0);
  CHECK(c.Update(runaway, kT, max_ahead) == Hlc::Pack(kT, 1));
  CHECK(c.last() < runaway);
  // Right at the bound it is merged.
  uint64_t edge = Hlc::Pack(kT + max_ahead, 0xffff);
  CHECK(c.Update(edge, kT, max_ahead) == Hlc::Pack(kT + max_ahead + 1, 0));
  // The default bound is a day; a clock a year ahead, or garbage, is ignored.
  Hlc d;
  CHECK(d.Update(Hlc::Pack(kT + 365ull * 86'400'000, 0), kT) == Hlc::Pack(kT, 0));
  CHECK(d.Update(UINT64_MAX, kT) == Hlc::Pack(kT, 1));
  CHECK(d.Update(UINT64_MAX, kT, UINT64_MAX) == UINT64_MAX);  // no bound: merged, and saturates
  CHECK(d.Now(kT) == UINT64_MAX);
}

TEST_CASE("Hlc: random interleavings of Now and Update are strictly increasing", "[hlc]") {
  GOSSYNC_SEEDED_RNG(0x41c0);
  Hlc c;
  uint64_t prev = 0;
  uint64_t wall = kT;
  for (int i = 0; i < 100'000; ++i) {
    wall = wall + rng() % 5 - 2;  // jitter, sometimes backwards
    uint64_t t;
    if (rng() % 3 == 0) {
      uint64_t remote = Hlc::Pack(wall + rng() % 2000 - 1000, static_cast<uint16_t>(rng()));
      t = c.Update(remote, wall);
      REQUIRE(t > remote);
    } else {
      t = c.Now(wall);
    }
    REQUIRE(t > prev);
    REQUIRE(Hlc::Millis(t) >= wall);
    prev = t;
  }
}

}  // namespace
}  // namespace gossync::core
