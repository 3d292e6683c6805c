#include "agent/core/hlc.h"

#include <algorithm>

namespace gossync::core {
namespace {

constexpr uint64_t kMaxMillis = (uint64_t{1} << 48) - 1;

// A wall clock beyond 48 bits (year 10889) cannot be packed; clamp rather
// than wrap, which would send the clock back to 1970.
uint64_t ClampMillis(uint64_t ms) { return std::min(ms, kMaxMillis); }

// The successor of `t`. Incrementing the packed value carries a full logical
// counter into the millisecond part, which keeps the order total. At the
// very top of the range it saturates: strictly greater is impossible there,
// and wrapping to zero would be worse.
uint64_t Next(uint64_t t) { return t == UINT64_MAX ? t : t + 1; }

}  // namespace

uint64_t Hlc::Now(uint64_t physical_ms) {
  const uint64_t wall = Pack(ClampMillis(physical_ms), 0);
  last_ = wall > last_ ? wall : Next(last_);
  return last_;
}

uint64_t Hlc::Update(uint64_t remote, uint64_t physical_ms, uint64_t max_ahead_ms) {
  const uint64_t wall_ms = ClampMillis(physical_ms);
  const uint64_t limit_ms =
      max_ahead_ms >= kMaxMillis - wall_ms ? kMaxMillis : wall_ms + max_ahead_ms;
  if (Millis(remote) > limit_ms) return Now(physical_ms);
  const uint64_t seen = std::max(last_, remote);
  const uint64_t wall = Pack(wall_ms, 0);
  last_ = wall > seen ? wall : Next(seen);
  return last_;
}

}  // namespace gossync::core
