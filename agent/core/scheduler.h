// RepairScheduler: which repair sessions to start, and when (DESIGN.md
// section 3, last point). Pure: driven by (now, event), returns the sessions
// to start.
//
// Rules:
//  - A member whose root differs from ours is a candidate. At most one
//    session per peer at a time, inbound or outbound.
//  - At most `max_sessions` sessions at once (inbound ones count too); the
//    rest wait their turn, oldest request first.
//  - A failed session backs the peer off: base_backoff_ms * 2^(failures-1),
//    capped at max_backoff_ms, with the jitter the caller passes in. A success
//    clears the backoff. A root that differs again right after a success is
//    retried after min_interval_ms (the peer may still be applying).
//  - An operator's `gossync sync PEER` skips the backoff and the interval.
//
// Not thread-safe: one owner (the loop thread).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/hash.h"

namespace gossync::core {

struct SchedulerConfig {
  size_t max_sessions = 4;
  uint64_t base_backoff_ms = 1'000;
  uint64_t max_backoff_ms = 60'000;
  uint64_t min_interval_ms = 200;
};

struct SessionRequest {
  std::string peer;
  std::string repair_addr;
  bool manual = false;  // gossync sync
};

struct PeerSchedule {
  bool running = false;
  bool inbound = false;
  bool wanted = false;         // a root mismatch waits for a slot or the backoff
  bool manual = false;
  std::string repair_addr;
  uint64_t wanted_since_ms = 0;
  uint64_t not_before_ms = 0;  // backoff or min interval
  uint32_t failures = 0;       // consecutive
  uint64_t last_success_ms = 0;
  uint64_t sessions_ok = 0;
  uint64_t sessions_failed = 0;
};

class RepairScheduler {
 public:
  explicit RepairScheduler(SchedulerConfig config) : config_(config) {}

  // Gossip says `peer` has a root other than ours.
  void RootDiffers(uint64_t now_ms, const std::string& peer, const std::string& repair_addr);
  // The operator asked for a session now.
  void Manual(uint64_t now_ms, const std::string& peer, const std::string& repair_addr);
  // A peer connected to us: its session occupies a slot. False if one is
  // already running with it (the caller refuses the connection) or no slot
  // is free.
  bool InboundStarted(uint64_t now_ms, const std::string& peer);
  // Both sides dialed at once: gossip shows each the differing root at the
  // same moment, so each has its own session to the other running when the
  // other's connection arrives, and refusing it as busy on both sides fails
  // both sessions and backs both off, again and again on a slow link. The
  // rule both sides apply: the session started by the node whose name sorts
  // first is kept. True when that means our running outbound session to
  // `peer` gives way (`peer` < `local`): its slot is freed with no failure
  // counted, so InboundStarted succeeds; the caller drops the outbound
  // session. False (nothing changes) otherwise.
  bool YieldToInbound(const std::string& local, const std::string& peer);
  // A session ended (either direction). `jitter` in [0, 1) spreads retries.
  void Ended(uint64_t now_ms, const std::string& peer, bool ok, double jitter);
  // The peer left the cluster or died: forget what waits for it.
  void Forget(const std::string& peer);
  void SetMaxSessions(size_t n) { config_.max_sessions = n; }

  // Sessions to start now, marked running. Call after every event and when
  // NextWakeMs() comes.
  std::vector<SessionRequest> Due(uint64_t now_ms);
  // The earliest time a waiting request becomes due, if any.
  std::optional<uint64_t> NextWakeMs() const;

  size_t running() const { return running_; }
  const std::map<std::string, PeerSchedule>& peers() const { return peers_; }

 private:
  SchedulerConfig config_;
  std::map<std::string, PeerSchedule> peers_;
  size_t running_ = 0;
};

}  // namespace gossync::core
