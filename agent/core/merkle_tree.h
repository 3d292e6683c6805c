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
// Not thread-safe: one owner. Movable, not copyable; a moved-from tree may
// only be destroyed or assigned to.
//
// Storage is sparse: a node exists only while its subtree holds an entry, so
// an empty tree is a few bytes whatever the depth. A leaf keeps its entry
// digests in a sorted vector grown by about 1/8 at a time. At 1,000,000
// entries and depth 4 the tree takes about 40 bytes per entry (32 of them
// the digests themselves; ~46 bytes of RSS with the allocator's free
// lists), and Replace + Flush takes ~3 us; see bench/bench_merkle.cc.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
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
  ~MerkleTree();
  MerkleTree(MerkleTree&&) noexcept;
  MerkleTree& operator=(MerkleTree&&) noexcept;
  MerkleTree(const MerkleTree&) = delete;
  MerkleTree& operator=(const MerkleTree&) = delete;

  int depth() const { return depth_; }
  static uint32_t BucketOf(std::string_view path, int depth);
  uint32_t BucketOf(std::string_view path) const { return BucketOf(path, depth_); }
  uint32_t bucket_count() const { return uint32_t{1} << (4 * depth_); }
  // True if (level, prefix) names a node of this tree: 0 <= level <= depth()
  // and prefix < 16^level. Check a peer's node address with it before
  // asking for its digest (the accessors below CHECK it).
  bool IsValidNode(int level, uint32_t prefix) const;

  // Adds an entry digest to its bucket.
  // REQUIRES: bucket < bucket_count(); digest not already in the bucket.
  void Insert(uint32_t bucket, const Hash256& digest);
  // Removes one; returns false if it was not there (the tree is unchanged).
  // REQUIRES: bucket < bucket_count().
  bool Remove(uint32_t bucket, const Hash256& digest);
  // Remove(old) then Insert(new), one dirty mark.
  // REQUIRES: old_digest present, new_digest absent (or equal to old_digest).
  void Replace(uint32_t bucket, const Hash256& old_digest, const Hash256& new_digest);
  void Clear();

  // Re-hashes dirty nodes: a changed leaf and its ancestors, each once.
  void Flush();
  // The root digest; zero for an empty tree. Valid until the next mutation.
  const Hash256& Root();
  // REQUIRES: IsValidNode(level, prefix). Zero for an empty subtree.
  Hash256 Digest(int level, uint32_t prefix);
  // The 16 child digests of (level, prefix).
  // REQUIRES: IsValidNode(level, prefix) and level < depth().
  std::array<Hash256, 16> ChildDigests(int level, uint32_t prefix);
  // The sorted entry digests of a leaf (empty span if empty). Valid until the
  // next mutation. REQUIRES: bucket < bucket_count().
  std::span<const Hash256> LeafDigests(uint32_t bucket) const;

  size_t size() const { return size_; }  // entry digests held
  size_t leaf_count() const;             // non-empty leaves
  // Approximate heap use, counting the allocator's per-block overhead.
  // Walks the tree: O(nodes), for diagnostics and benchmarks.
  size_t MemoryBytes() const;

 private:
  // Nodes, the reused hasher and counters; see merkle_tree.cc.
  struct Impl;
  int depth_;
  size_t size_ = 0;
  std::unique_ptr<Impl> impl_;
};

// The buckets whose leaf digests differ between two trees of equal depth,
// found by descent (only into differing children), sorted ascending.
std::vector<uint32_t> DiffBuckets(MerkleTree& a, MerkleTree& b);

}  // namespace gossync::core
