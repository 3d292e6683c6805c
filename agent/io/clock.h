// The daemon's real clock. The core never reads a clock; the daemon reads these and
// passes the time in (DESIGN.md section 6).
#pragma once

#include <cstdint>

namespace gossync::io {

// Milliseconds since the Unix epoch (CLOCK_REALTIME): for HLC and timestamps shown to
// operators. May jump when the system clock is set. Any thread.
int64_t WallMillis();

// Milliseconds on CLOCK_MONOTONIC (since an arbitrary point, typically boot): for
// timeouts and intervals. Never goes backwards. Any thread.
int64_t MonotonicMillis();

}  // namespace gossync::io
