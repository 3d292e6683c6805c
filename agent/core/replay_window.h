// A sliding window over one sender run's packet sequence numbers, as IPsec
// does it (RFC 4303 section 3.4.3): a packet is fresh if its number is above
// the highest seen, or within the last kSize below it and not yet seen.
// Sequence numbers start at 1; 0 never passes.
#pragma once

#include <cstdint>

namespace gossync::core {

class ReplayWindow {
 public:
  static constexpr uint64_t kSize = 64;
  enum class Verdict { kFresh, kDuplicate, kTooOld };

  ReplayWindow() = default;

  Verdict Check(uint64_t seq) const {
    if (seq > highest_) return Verdict::kFresh;
    uint64_t back = highest_ - seq;
    if (back >= kSize) return Verdict::kTooOld;
    return (bits_ >> back) & 1 ? Verdict::kDuplicate : Verdict::kFresh;
  }

  // Records `seq` as seen. REQUIRES: Check(seq) == kFresh.
  void Mark(uint64_t seq) {
    if (seq > highest_) {
      uint64_t shift = seq - highest_;
      bits_ = shift >= kSize ? 0 : bits_ << shift;
      bits_ |= 1;
      highest_ = seq;
    } else {
      bits_ |= uint64_t{1} << (highest_ - seq);
    }
  }

  Verdict CheckAndMark(uint64_t seq) {
    Verdict v = Check(seq);
    if (v == Verdict::kFresh) Mark(seq);
    return v;
  }

  uint64_t highest() const { return highest_; }

 private:
  uint64_t highest_ = 0;
  uint64_t bits_ = 1;  // bit i: highest_ - i was seen; "0" counts as seen
};

}  // namespace gossync::core
