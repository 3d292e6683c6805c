// Seeds for property tests: fixed by default so a run is reproducible;
// GOSSYNC_TEST_SEED=<n> (or "random") reruns with another. The seed is logged
// through INFO so a failure report names it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace gossync::testing {

inline uint64_t TestSeed(uint64_t fixed) {
  const char* env = std::getenv("GOSSYNC_TEST_SEED");
  if (env == nullptr || *env == '\0') return fixed;
  if (std::string(env) == "random")
    return (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  return std::strtoull(env, nullptr, 0);
}

}  // namespace gossync::testing

// Declares `seed` and `rng` (std::mt19937_64) and puts the seed in every
// failure message of the enclosing scope.
#define GOSSYNC_SEEDED_RNG(fixed)                                        \
  const uint64_t seed = ::gossync::testing::TestSeed(fixed);             \
  INFO("seed " << seed << " (rerun: GOSSYNC_TEST_SEED=" << seed << ")"); \
  std::mt19937_64 rng(seed)
