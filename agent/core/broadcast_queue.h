// Membership updates waiting to be piggybacked on outgoing packets, each sent
// a bounded number of times: infection-style dissemination (SWIM section 4;
// memberlist's TransmitLimitedQueue).
//
// One entry per member: an update about a member supersedes the queued one
// about it (a newer incarnation or state says everything the older did), so
// the queue never holds more entries than there are members. `max_entries`
// bounds it even so: when full, the entry sent the most times (the oldest
// among equals) is dropped and counted.
//
// Not thread-safe: owned by one Membership.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/core/gossip_types.h"

namespace gossync::core {

class BroadcastQueue {
 public:
  // REQUIRES: max_entries > 0.
  explicit BroadcastQueue(size_t max_entries);
  BroadcastQueue(const BroadcastQueue&) = delete;
  BroadcastQueue& operator=(const BroadcastQueue&) = delete;

  // Queues `update` with zero transmissions. REQUIRES: update.info != nullptr.
  void Enqueue(MemberUpdate update);

  // Appends to `out` at most `max_count` updates whose EncodedSize fits in
  // `budget` bytes together, fewest transmissions first and, among equals,
  // the newest first. Each taken update counts one transmission and leaves
  // the queue once it has been sent `transmit_limit` times. Returns the bytes
  // taken. REQUIRES: transmit_limit > 0.
  size_t Fill(size_t budget, int transmit_limit, size_t max_count, std::vector<MemberUpdate>* out);

  // Drops the queued update about `name`, if any.
  void Erase(std::string_view name);
  void Clear();

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  size_t max_entries() const { return max_entries_; }
  // Entries dropped because the queue was full.
  uint64_t evicted() const { return evicted_; }
  // The queued update about `name` and its transmissions so far; null / -1
  // if none is queued. For tests and diagnostics.
  const MemberUpdate* Find(std::string_view name) const;
  int Transmits(std::string_view name) const;

 private:
  struct Entry {
    MemberUpdate update;
    uint32_t transmits = 0;
    uint64_t id = 0;  // enqueue order; higher is newer
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, Entry, struct Hash, std::equal_to<>>;
  // Sending order: fewest transmissions, then newest.
  struct Key {
    uint32_t transmits;
    uint64_t id;
    Map::value_type* item;  // in entries_ (a node-based map: stable)
    bool operator<(const Key& o) const {
      if (transmits != o.transmits) return transmits < o.transmits;
      return id > o.id;
    }
  };
  size_t max_entries_;
  uint64_t next_id_ = 1;
  uint64_t evicted_ = 0;
  Map entries_;
  std::set<Key> order_;
};

}  // namespace gossync::core
