// Shared helpers for the io tests: a loop per test and a bounded RunUntil.
#pragma once

#include <catch2/catch.hpp>
#include <functional>
#include <memory>

#include "agent/io/loop.h"
#include "agent/io/timer.h"

namespace gossync::io::testing {

// Creates a Loop or fails the test.
inline std::unique_ptr<Loop> NewLoop() {
  auto loop = Loop::Create();
  REQUIRE(loop.ok());
  return std::move(loop).value();
}

// How long a test waits for a condition before failing; generous for sanitizer builds
// on a loaded two-core machine, never a synchronization sleep.
constexpr uint64_t kDeadlineMs = 10000;

// Like Loop::RunUntil, for a condition outside the loop (a file, /proc): a 1 ms ticker
// keeps the loop iterating so `done` is re-checked.
inline bool PollUntil(Loop& loop, const std::function<bool()>& done,
                      uint64_t timeout_ms = kDeadlineMs) {
  auto ticker = Timer::Create(loop.get());
  ticker->Start(1, 1, [] {});
  return loop.RunUntil(done, timeout_ms);
}

}  // namespace gossync::io::testing
