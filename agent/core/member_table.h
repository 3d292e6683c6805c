// The member records of one Membership, by name. Kept lean: the simulator
// holds N views of N members (10^8 records at N = 10,000), so a record is
// 56 bytes, shares its MemberInfo, and what only members that talk to us need
// (replay window, advertised root) is allocated on first contact.
//
// Slots are stable: a record stays in its slot until erased, and a freed
// slot is reused. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "agent/core/gossip_types.h"
#include "agent/core/hash.h"
#include "agent/core/replay_window.h"

namespace gossync::core {

// What we know from a member's own packets.
struct Contact {
  uint64_t window_boot = 0;  // the run `window` belongs to
  ReplayWindow window;       // over that run's sequence numbers
  uint64_t last_heard_ms = 0;
  bool has_root = false;
  Hash256 root{};
  uint64_t entry_count = 0;
  uint64_t hlc = 0;
};

struct MemberRecord {
  MemberInfoPtr info;  // null: a free slot
  uint64_t incarnation = 0;
  uint64_t boot = 0;  // its newest run we know of; packets to it carry it
  uint64_t state_change_ms = 0;
  std::unique_ptr<Contact> contact;  // null until its first proven packet
  MemberState state = MemberState::kAlive;
};

class MemberTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  MemberTable() = default;
  MemberTable(const MemberTable&) = delete;
  MemberTable& operator=(const MemberTable&) = delete;

  // The slot of `name`, or kNone.
  uint32_t Find(std::string_view name) const;
  // A new record for info->name in a free slot. REQUIRES: Find(info->name) == kNone.
  uint32_t Insert(MemberInfoPtr info);
  // Replaces the info of a record; the name must not change.
  void SetInfo(uint32_t slot, MemberInfoPtr info);
  // Frees the slot. REQUIRES: slot in use.
  void Erase(uint32_t slot);
  void Reserve(size_t n);

  MemberRecord& at(uint32_t slot) { return slots_[slot]; }
  const MemberRecord& at(uint32_t slot) const { return slots_[slot]; }
  bool InUse(uint32_t slot) const { return slot < slots_.size() && slots_[slot].info != nullptr; }
  // Records in use.
  size_t size() const { return size_; }
  // One past the highest slot ever used: iterate 0..slot_count() with InUse.
  uint32_t slot_count() const { return static_cast<uint32_t>(slots_.size()); }

 private:
  // Open addressing with linear probing over slot numbers; kNone is empty.
  // Deletion shifts entries back, so there are no tombstones.
  size_t Bucket(std::string_view name) const;
  void Grow();
  void IndexInsert(uint32_t slot);

  std::vector<MemberRecord> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> index_;  // size is a power of two, at most half full
  size_t size_ = 0;
};

}  // namespace gossync::core
