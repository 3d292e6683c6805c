// The scaling rules of SWIM with the Lifeguard refinements, as memberlist
// applies them (util.go, suspicion.go). Pure arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gossync::core {

// The minimum time a member stays suspect before it is declared dead:
// mult * max(1, log10(max(1, n))) * interval, n the number of live members.
uint64_t SuspicionMinMs(uint32_t mult, size_t n, uint64_t interval_ms);

// How many times a piggybacked update is sent: mult * ceil(log10(n + 1)).
int RetransmitLimit(uint32_t mult, size_t n);

// A suspicion timer that starts at max_ms and shrinks towards min_ms as
// independent confirmations arrive (Lifeguard, "dynamic suspicion timeout"):
// after n of the k wanted confirmations the timeout is
//   max - (log(n+1) / log(k+1)) * (max - min),
// never below min; with k == 0 it is min from the start. The member that
// raised the suspicion does not confirm it (we may hear our own suspicion
// gossiped back).
class SuspicionTimer {
 public:
  SuspicionTimer(uint64_t start_ms, uint64_t min_ms, uint64_t max_ms, uint32_t k,
                 std::string_view raised_by);

  // The time at which the member is declared dead.
  uint64_t DeadlineMs() const;
  // Counts `from` as a confirmation. False if it is a repeat, the raiser, or
  // k confirmations are already in (then it changes nothing).
  bool Confirm(std::string_view from);

  uint32_t confirmations() const { return n_; }
  uint32_t wanted() const { return k_; }

 private:
  uint64_t start_ms_;
  uint64_t min_ms_;
  uint64_t max_ms_;
  uint32_t k_;
  uint32_t n_ = 0;
  std::vector<std::string> seen_;  // raiser and confirmers, at most k + 1
};

}  // namespace gossync::core
