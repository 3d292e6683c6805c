#include "agent/store/replica_dataset.h"

#include <algorithm>

#include "agent/core/repair_messages.h"

namespace gossync::store {

std::array<core::Hash256, 16> ReplicaDataset::ChildDigests(int level, uint32_t prefix) {
  return replica_->tree().ChildDigests(level, prefix);
}

Result<std::vector<core::KeyDigest>> ReplicaDataset::ListBucket(uint32_t bucket) {
  std::vector<core::KeyDigest> out;
  Status s = replica_->index().ForEachDigestInBucket(
      bucket, [&](std::string_view path, const core::Hash256& digest) {
        out.push_back({core::PathKey(path), core::Truncate(digest)});
      });
  if (!s.ok()) return s;
  // The index orders by path; the protocol by key.
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<core::Entry>> ReplicaDataset::EntriesByKeys(uint32_t bucket,
                                                               std::span<const uint64_t> keys) {
  Result<std::vector<IndexRecord>> rows = replica_->GetBucket(bucket);
  if (!rows.ok()) return rows.status();
  std::vector<core::Entry> out;
  for (IndexRecord& r : *rows) {
    if (std::binary_search(keys.begin(), keys.end(), core::PathKey(r.entry.path))) {
      out.push_back(std::move(r.entry));
    }
  }
  return out;
}

Result<std::optional<core::Entry>> ReplicaDataset::Get(std::string_view path) {
  Result<std::optional<IndexRecord>> r = replica_->Get(path);
  if (!r.ok()) return r.status();
  if (!r->has_value()) return std::optional<core::Entry>();
  return std::optional<core::Entry>(std::move((*r)->entry));
}

Status ReplicaDataset::ForEachUnder(int level, uint32_t prefix,
                                    const std::function<void(const core::Entry&)>& fn) {
  GOSSYNC_CHECK(replica_->tree().IsValidNode(level, prefix));
  const int shift = 4 * (depth() - level);
  const uint32_t first = prefix << shift;
  const uint32_t end = (prefix + 1) << shift;  // depth <= 6: 16^6 fits with room to spare
  return replica_->index().ForEachInBuckets(first, end, [&](const IndexRecord& r) {
    fn(r.entry);
    return Status::Ok();
  });
}

}  // namespace gossync::store
