#include "agent/core/scheduler.h"

#include <algorithm>

namespace gossync::core {

void RepairScheduler::RootDiffers(uint64_t now_ms, const std::string& peer,
                                  const std::string& repair_addr) {
  PeerSchedule& p = peers_[peer];
  p.repair_addr = repair_addr;
  if (p.running || p.wanted) return;
  p.wanted = true;
  p.wanted_since_ms = now_ms;
}

void RepairScheduler::Manual(uint64_t now_ms, const std::string& peer,
                             const std::string& repair_addr) {
  PeerSchedule& p = peers_[peer];
  p.repair_addr = repair_addr;
  if (p.running) return;
  if (!p.wanted) p.wanted_since_ms = now_ms;
  p.wanted = true;
  p.manual = true;
}

bool RepairScheduler::InboundStarted(uint64_t now_ms, const std::string& peer) {
  (void)now_ms;
  PeerSchedule& p = peers_[peer];
  if (p.running || running_ >= config_.max_sessions) return false;
  p.running = true;
  p.inbound = true;
  p.wanted = false;  // this session settles the mismatch as well
  ++running_;
  return true;
}

bool RepairScheduler::YieldToInbound(const std::string& local, const std::string& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.running || it->second.inbound || !(peer < local)) {
    return false;
  }
  it->second.running = false;
  --running_;
  return true;
}

void RepairScheduler::Ended(uint64_t now_ms, const std::string& peer, bool ok, double jitter) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.running) return;
  PeerSchedule& p = it->second;
  p.running = false;
  p.inbound = false;
  --running_;
  if (ok) {
    p.failures = 0;
    p.sessions_ok++;
    p.last_success_ms = now_ms;
    p.not_before_ms = now_ms + config_.min_interval_ms;
    return;
  }
  p.sessions_failed++;
  p.failures = std::min<uint32_t>(p.failures + 1, 32);
  uint64_t backoff = config_.base_backoff_ms;
  for (uint32_t i = 1; i < p.failures && backoff < config_.max_backoff_ms; ++i) backoff *= 2;
  backoff = std::min(backoff, config_.max_backoff_ms);
  jitter = std::clamp(jitter, 0.0, 1.0);
  p.not_before_ms = now_ms + backoff / 2 + static_cast<uint64_t>(jitter * (backoff / 2));
}

void RepairScheduler::Forget(const std::string& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  if (it->second.running) {
    it->second.wanted = false;  // let the running session end; Ended() cleans up
    return;
  }
  peers_.erase(it);
}

std::vector<SessionRequest> RepairScheduler::Due(uint64_t now_ms) {
  std::vector<std::pair<uint64_t, std::string>> ready;
  for (const auto& [name, p] : peers_) {
    if (!p.wanted || p.running) continue;
    if (!p.manual && now_ms < p.not_before_ms) continue;
    ready.push_back({p.wanted_since_ms, name});
  }
  std::sort(ready.begin(), ready.end());
  std::vector<SessionRequest> out;
  for (const auto& [since, name] : ready) {
    if (running_ >= config_.max_sessions) break;
    PeerSchedule& p = peers_[name];
    out.push_back({name, p.repair_addr, p.manual});
    p.wanted = false;
    p.manual = false;
    p.running = true;
    p.inbound = false;
    ++running_;
  }
  return out;
}

std::optional<uint64_t> RepairScheduler::NextWakeMs() const {
  std::optional<uint64_t> next;
  for (const auto& [name, p] : peers_) {
    if (!p.wanted || p.running) continue;
    uint64_t t = p.manual ? 0 : p.not_before_ms;
    if (!next || t < *next) next = t;
  }
  return next;
}

}  // namespace gossync::core
