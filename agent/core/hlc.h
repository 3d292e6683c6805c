// Hybrid logical clock (DESIGN.md section 1): 48-bit wall-clock milliseconds
// and a 16-bit logical counter in one uint64_t. Monotonic even when the wall
// clock steps backwards; merges remote timestamps so causality is preserved
// across nodes whose clocks disagree.
#pragma once

#include <cstdint>

namespace gossync::core {

class Hlc {
 public:
  // `last` is the highest timestamp this node ever issued (persisted).
  explicit Hlc(uint64_t last = 0) : last_(last) {}

  static uint64_t Pack(uint64_t ms, uint16_t logical) { return (ms << 16) | logical; }
  static uint64_t Millis(uint64_t t) { return t >> 16; }
  static uint16_t Logical(uint64_t t) { return static_cast<uint16_t>(t & 0xffff); }

  // A new timestamp for a local event; strictly greater than any issued or
  // merged before. `physical_ms` is the wall clock (ms since the epoch).
  uint64_t Now(uint64_t physical_ms);
  // Merges a timestamp seen from a peer and returns a local timestamp greater
  // than both. A remote timestamp more than `max_ahead_ms` ahead of our
  // wall clock is not merged (a peer with a runaway clock must not drag the
  // cluster along); Update then behaves as Now and returns it.
  uint64_t Update(uint64_t remote, uint64_t physical_ms, uint64_t max_ahead_ms = kDefaultMaxAheadMs);

  uint64_t last() const { return last_; }

  static constexpr uint64_t kDefaultMaxAheadMs = 24ull * 3600 * 1000;

 private:
  uint64_t last_;
};

}  // namespace gossync::core
