// The Merkle tree over entry digests (DESIGN.md section 2).
//
// Fanout 16, fixed depth D (default 4). An entry lives in the leaf named by
// the first D hex digits of SHA-256(path) (BucketOf). Leaf digest: SHA-256
// over the leaf's entry digests, sorted. Interior digest: SHA-256 over its 16
// child digests. An empty subtree has the zero digest and takes no memory.
//
// Nodes are addressed by (level, prefix): level 0 is the root (prefix 0);
// level L has prefixes 0 .. 16^L - 1; level D holds the leaves, whose prefix
// is the bucket. The children of (L, p) are (L+1, p*16 + i), i = 0..15.
//
// Updates are incremental and batched: Insert/Remove mark the path to the
// root dirty, Flush (or any digest read) re-hashes only dirty nodes.
// Not thread-safe: one owner.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/core/hash.h"

namespace gossync::core {

inline constexpr int kDefaultTreeDepth = 4;
inline constexpr int kMinTreeDepth = 1;
inline constexpr int kMaxTreeDepth = 6;

class MerkleTree {
 public:
  // REQUIRES: kMinTreeDepth <= depth <= kMaxTreeDepth.
  explicit MerkleTree(int depth = kDefaultTreeDepth);

  int depth() const { return depth_; }
  static uint32_t BucketOf(std::string_view path, int depth);
  uint32_t BucketOf(std::string_view path) const { return BucketOf(path, depth_); }

  // Adds an entry digest to its bucket. REQUIRES: not already present.
  void Insert(uint32_t bucket, const Hash256& digest);
  // Removes one; returns false if it was not there (the tree is unchanged).
  bool Remove(uint32_t bucket, const Hash256& digest);
  // Remove(old) then Insert(new), one dirty mark.
  void Replace(uint32_t bucket, const Hash256& old_digest, const Hash256& new_digest);
  void Clear();

  // Re-hashes dirty nodes.
  void Flush();
  const Hash256& Root();
  Hash256 Digest(int level, uint32_t prefix);
  // The 16 child digests of (level, prefix). REQUIRES: level < depth().
  std::array<Hash256, 16> ChildDigests(int level, uint32_t prefix);
  // The sorted entry digests of a leaf (empty span if empty). Valid until the
  // next mutation.
  std::span<const Hash256> LeafDigests(uint32_t bucket);

  size_t size() const { return size_; }                 // entry digests held
  size_t leaf_count() const;                            // non-empty leaves
  size_t MemoryBytes() const;                           // approximate heap use

 private:
  // Implementation-defined; see merkle_tree.cc.
  struct Impl;
  int depth_;
  size_t size_ = 0;
  // ... (the implementer adds members here)
};

// The buckets whose leaf digests differ between two trees of equal depth,
// found by descent (only into differing children), sorted ascending.
std::vector<uint32_t> DiffBuckets(MerkleTree& a, MerkleTree& b);

}  // namespace gossync::core
