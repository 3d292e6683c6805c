#include "agent/io/clock.h"

#include <time.h>

namespace gossync::io {
namespace {

int64_t Millis(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);  // cannot fail for these two clocks on Linux
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

int64_t WallMillis() { return Millis(CLOCK_REALTIME); }
int64_t MonotonicMillis() { return Millis(CLOCK_MONOTONIC); }

}  // namespace gossync::io
