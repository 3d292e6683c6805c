#include "agent/daemon/sync_keeper.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gossync::daemon {

uint64_t KeepSyncIntervalMs(uint64_t ttl_ms) {
  return std::clamp<uint64_t>(ttl_ms / 10, 1'000, 60'000);
}

void KeepSync(const GossipDriver& gossip, LocalEngine* engine, RepairService* repair,
              uint64_t* round) {
  const core::Hash256 root = engine->state().root;
  std::optional<core::Hash256> in_sync;
  std::vector<std::pair<std::string, std::string>> alive;  // name, repair address
  for (const core::MemberView& m : gossip.membership().Members()) {
    if (m.state != core::MemberState::kAlive) continue;
    if (m.has_root && m.root == root) in_sync = root;
    if (!m.repair_addr.empty()) alive.emplace_back(m.name, m.repair_addr);
  }
  const uint64_t pick = (*round)++;
  engine->KeepSync(in_sync, [repair, alive = std::move(alive), pick](core::SyncMode mode) {
    if (mode == core::SyncMode::kCurrent || alive.empty()) return;
    const auto& [name, addr] = alive[pick % alive.size()];
    repair->RootDiffers(name, addr);
  });
}

}  // namespace gossync::daemon
