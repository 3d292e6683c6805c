// The local dataset as a repair session reads it (core::DatasetView), backed
// by a store::Replica: digests from its MerkleTree, entries from its Index.
//
// Thread: the store thread, like the Replica it reads (repair_executor.h);
// not thread-safe. Every read sees every change committed before it, so a
// session reads the result of each action the executor has completed.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "agent/core/dataset_view.h"
#include "agent/store/replica.h"

namespace gossync::store {

class ReplicaDataset : public core::DatasetView {
 public:
  // `replica` must outlive this view.
  explicit ReplicaDataset(Replica* replica) : replica_(replica) {}

  int depth() const override { return replica_->tree().depth(); }
  core::Hash256 Root() override { return replica_->root(); }
  uint64_t EntryCount() override { return replica_->counts().total(); }
  std::array<core::Hash256, 16> ChildDigests(int level, uint32_t prefix) override;

  Result<std::vector<core::KeyDigest>> ListBucket(uint32_t bucket) override;
  Result<std::vector<core::Entry>> EntriesByKeys(uint32_t bucket,
                                                 std::span<const uint64_t> keys) override;
  Result<std::optional<core::Entry>> Get(std::string_view path) override;
  // One index range query over the buckets beneath (level, prefix): they are
  // contiguous ([prefix << 4(depth - level), (prefix + 1) << 4(depth - level))).
  Status ForEachUnder(int level, uint32_t prefix,
                      const std::function<void(const core::Entry&)>& fn) override;

 private:
  Replica* replica_;
};

}  // namespace gossync::store
