#include "agent/core/catch_up.h"

#include <algorithm>

#include "agent/core/hlc.h"
#include "agent/core/repair_messages.h"

namespace gossync::core {

const char* SyncModeName(SyncMode mode) {
  switch (mode) {
    case SyncMode::kCurrent:
      return "current";
    case SyncMode::kCatchUp:
      return "catch_up";
    case SyncMode::kNew:
      return "new";
  }
  return "unknown";
}

uint64_t CatchUpGraceMs(uint64_t ttl_ms) {
  return std::min<uint64_t>(ttl_ms / 10, 24ull * 3600 * 1000);
}

SyncMode ModeAt(const SyncPoint& p, uint64_t now_ms, uint64_t ttl_ms) {
  if (p.wall_ms == 0) return SyncMode::kNew;
  const uint64_t limit = ttl_ms - CatchUpGraceMs(ttl_ms);
  if (ttl_ms != 0 && now_ms > p.wall_ms && now_ms - p.wall_ms > limit) return SyncMode::kCatchUp;
  return SyncMode::kCurrent;
}

uint32_t HelloFlagsFor(SyncMode mode) {
  switch (mode) {
    case SyncMode::kCatchUp:
      return kHelloCatchUp;
    case SyncMode::kNew:
      return kHelloUnsynced;
    case SyncMode::kCurrent:
      break;
  }
  return 0;
}

bool PeerIsCurrent(uint32_t flags) { return (flags & (kHelloCatchUp | kHelloUnsynced)) == 0; }

bool SessionIsSyncPoint(SyncMode self, uint32_t peer_flags) {
  if (peer_flags & kHelloCatchUp) return false;
  if (self == SyncMode::kCatchUp) return PeerIsCurrent(peer_flags);
  return true;
}

bool OlderThanTtl(uint64_t hlc, uint64_t now_ms, uint64_t ttl_ms) {
  if (ttl_ms == 0) return false;
  const uint64_t ms = Hlc::Millis(hlc);
  return now_ms > ttl_ms && ms < now_ms - ttl_ms;
}

}  // namespace gossync::core
