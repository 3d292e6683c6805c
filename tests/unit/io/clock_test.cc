#include "agent/io/clock.h"

#include <catch2/catch.hpp>
#include <chrono>

namespace gossync::io {
namespace {

TEST_CASE("Clock: wall time is the Unix epoch in ms", "[io][clock]") {
  const int64_t system = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t wall = WallMillis();
  CHECK(wall > 1'600'000'000'000);  // after 2020
  CHECK(std::abs(wall - system) < 1000);
}

TEST_CASE("Clock: monotonic time never goes backwards", "[io][clock]") {
  int64_t last = MonotonicMillis();
  for (int i = 0; i < 100000; ++i) {
    int64_t now = MonotonicMillis();
    REQUIRE(now >= last);
    last = now;
  }
}

}  // namespace
}  // namespace gossync::io
