#include "agent/core/member_table.h"

#include <functional>

#include "gossync/status.h"

namespace gossync::core {

static_assert(sizeof(MemberRecord) <= 56, "a record is held N^2 times in the simulator");

size_t MemberTable::Bucket(std::string_view name) const {
  return std::hash<std::string_view>{}(name) & (index_.size() - 1);
}

uint32_t MemberTable::Find(std::string_view name) const {
  if (index_.empty()) return kNone;
  for (size_t b = Bucket(name);; b = (b + 1) & (index_.size() - 1)) {
    uint32_t s = index_[b];
    if (s == kNone) return kNone;
    if (slots_[s].info->name == name) return s;
  }
}

void MemberTable::IndexInsert(uint32_t slot) {
  size_t b = Bucket(slots_[slot].info->name);
  while (index_[b] != kNone) b = (b + 1) & (index_.size() - 1);
  index_[b] = slot;
}

void MemberTable::Grow() {
  size_t cap = index_.empty() ? 16 : index_.size() * 2;
  index_.assign(cap, kNone);
  for (uint32_t s = 0; s < slots_.size(); ++s) {
    if (slots_[s].info != nullptr) IndexInsert(s);
  }
}

void MemberTable::Reserve(size_t n) {
  slots_.reserve(n);
  size_t cap = index_.empty() ? 16 : index_.size();
  while (cap < 2 * n) cap *= 2;
  if (cap != index_.size()) {
    index_.assign(cap, kNone);
    for (uint32_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s].info != nullptr) IndexInsert(s);
    }
  }
}

uint32_t MemberTable::Insert(MemberInfoPtr info) {
  GOSSYNC_CHECK(info != nullptr);
  if (2 * (size_ + 1) > index_.size()) Grow();
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    GOSSYNC_CHECK(slots_.size() < kNone);
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  slots_[slot] = MemberRecord{};
  slots_[slot].info = std::move(info);
  IndexInsert(slot);
  ++size_;
  return slot;
}

void MemberTable::SetInfo(uint32_t slot, MemberInfoPtr info) {
  GOSSYNC_CHECK(InUse(slot) && info != nullptr && info->name == slots_[slot].info->name);
  slots_[slot].info = std::move(info);
}

void MemberTable::Erase(uint32_t slot) {
  GOSSYNC_CHECK(InUse(slot));
  const size_t mask = index_.size() - 1;
  size_t b = Bucket(slots_[slot].info->name);
  while (index_[b] != slot) b = (b + 1) & mask;
  // Backward-shift deletion: pull later members of the probe run into the
  // hole when their home bucket does not lie (cyclically) between the hole
  // and their position.
  size_t hole = b;
  for (size_t i = (hole + 1) & mask; index_[i] != kNone; i = (i + 1) & mask) {
    size_t home = Bucket(slots_[index_[i]].info->name);
    bool between = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
    if (!between) {
      index_[hole] = index_[i];
      hole = i;
    }
  }
  index_[hole] = kNone;
  slots_[slot] = MemberRecord{};
  free_.push_back(slot);
  --size_;
}

}  // namespace gossync::core
