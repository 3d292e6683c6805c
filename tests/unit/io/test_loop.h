// Shared helpers for the io tests: a loop per test and a bounded RunUntil.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <memory>

#include "agent/io/loop.h"

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

}  // namespace gossync::io::testing
