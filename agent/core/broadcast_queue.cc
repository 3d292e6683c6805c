#include "agent/core/broadcast_queue.h"

#include "gossync/status.h"

namespace gossync::core {

namespace {
// Smaller than any encoded update (array header, state, incarnation, a
// one-byte name and three empty strings): below it nothing more can fit.
constexpr size_t kMinUpdateBytes = 8;
// Fill looks at no more than this many entries per call, so a packet's cost
// does not grow with the queue when the budget is nearly spent.
constexpr size_t kMaxScan = 256;
}  // namespace

BroadcastQueue::BroadcastQueue(size_t max_entries) : max_entries_(max_entries) {
  GOSSYNC_CHECK(max_entries > 0);
}

void BroadcastQueue::Enqueue(MemberUpdate update) {
  GOSSYNC_CHECK(update.info != nullptr);
  auto it = entries_.find(std::string_view(update.info->name));
  if (it != entries_.end()) {
    order_.erase(Key{it->second.transmits, it->second.id, &*it});
  } else {
    if (entries_.size() >= max_entries_) {
      // The entry sent the most (the oldest among equals) has done the most
      // of its work already.
      auto last = std::prev(order_.end());
      std::string victim = last->item->first;
      order_.erase(last);
      entries_.erase(victim);
      ++evicted_;
    }
    it = entries_.emplace(update.info->name, Entry{}).first;
  }
  it->second.update = std::move(update);
  it->second.transmits = 0;
  it->second.id = next_id_++;
  order_.insert(Key{0, it->second.id, &*it});
}

size_t BroadcastQueue::Fill(size_t budget, int transmit_limit, size_t max_count,
                            std::vector<MemberUpdate>* out) {
  GOSSYNC_CHECK(transmit_limit > 0);
  std::vector<Key> taken;
  size_t used = 0;
  size_t scanned = 0;
  for (auto k = order_.begin(); k != order_.end() && taken.size() < max_count; ++k) {
    if (budget - used < kMinUpdateBytes || ++scanned > kMaxScan) break;
    size_t n = EncodedSize(k->item->second.update);
    if (n > budget - used) continue;  // a smaller one further on may fit
    used += n;
    taken.push_back(*k);
  }
  for (const Key& k : taken) {
    Entry& e = k.item->second;
    order_.erase(k);
    out->push_back(e.update);
    if (++e.transmits >= static_cast<uint32_t>(transmit_limit)) {
      entries_.erase(entries_.find(std::string_view(k.item->first)));
    } else {
      order_.insert(Key{e.transmits, e.id, k.item});
    }
  }
  return used;
}

void BroadcastQueue::Erase(std::string_view name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  order_.erase(Key{it->second.transmits, it->second.id, &*it});
  entries_.erase(it);
}

void BroadcastQueue::Clear() {
  order_.clear();
  entries_.clear();
}

const MemberUpdate* BroadcastQueue::Find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second.update;
}

int BroadcastQueue::Transmits(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? -1 : static_cast<int>(it->second.transmits);
}

}  // namespace gossync::core
