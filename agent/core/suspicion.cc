#include "agent/core/suspicion.h"

#include <algorithm>
#include <cmath>

namespace gossync::core {

uint64_t SuspicionMinMs(uint32_t mult, size_t n, uint64_t interval_ms) {
  double scale = std::max(1.0, std::log10(std::max<double>(1.0, static_cast<double>(n))));
  // Whole milliseconds, as memberlist keeps three decimals of the scale.
  return static_cast<uint64_t>(mult) * static_cast<uint64_t>(scale * 1000.0) * interval_ms / 1000;
}

int RetransmitLimit(uint32_t mult, size_t n) {
  double scale = std::ceil(std::log10(static_cast<double>(n) + 1.0));
  return std::max(1, static_cast<int>(mult) * static_cast<int>(scale));
}

SuspicionTimer::SuspicionTimer(uint64_t start_ms, uint64_t min_ms, uint64_t max_ms, uint32_t k,
                               std::string_view raised_by)
    : start_ms_(start_ms), min_ms_(min_ms), max_ms_(std::max(min_ms, max_ms)), k_(k) {
  seen_.emplace_back(raised_by);
}

uint64_t SuspicionTimer::DeadlineMs() const {
  if (k_ == 0 || n_ >= k_) return start_ms_ + min_ms_;
  double frac = std::log(static_cast<double>(n_) + 1.0) / std::log(static_cast<double>(k_) + 1.0);
  double raw = static_cast<double>(max_ms_) - frac * static_cast<double>(max_ms_ - min_ms_);
  uint64_t timeout = std::max(min_ms_, static_cast<uint64_t>(std::floor(raw)));
  return start_ms_ + timeout;
}

bool SuspicionTimer::Confirm(std::string_view from) {
  if (n_ >= k_) return false;
  if (std::find(seen_.begin(), seen_.end(), from) != seen_.end()) return false;
  seen_.emplace_back(from);
  ++n_;
  return true;
}

}  // namespace gossync::core
