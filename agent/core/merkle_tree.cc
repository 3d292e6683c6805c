#include "agent/core/merkle_tree.h"

#include <algorithm>
#include <cstring>

#include "gossync/status.h"

namespace gossync::core {
namespace {

// A node exists only while its subtree holds at least one entry; an absent
// child is the zero digest. Which struct a Node* points to follows from its
// level (leaves are exactly at depth), so there is no vtable or tag.
struct Node {
  Hash256 digest{};
  bool dirty = true;
};

struct Interior : Node {
  std::array<Node*, 16> child{};
};

struct Leaf : Node {
  std::vector<Hash256> digests;  // sorted, unique
};

// The nibble of `prefix` (a node address at `level`) that picks the child
// taken at `step` (0 = the root's child) on the way down.
unsigned NibbleAt(uint32_t prefix, int level, int step) {
  return (prefix >> (4 * (level - 1 - step))) & 0xf;
}

// glibc malloc: 8 bytes of header, 16-byte granularity, 32 bytes minimum.
size_t Chunk(size_t bytes) { return std::max<size_t>(32, (bytes + 8 + 15) & ~size_t{15}); }

}  // namespace

struct MerkleTree::Impl {
  Node* root = nullptr;
  size_t leaves = 0;
  // Reused for every node: creating an EVP context per node would cost more
  // than hashing it.
  Sha256Hasher hasher;

  ~Impl() { Free(root, 0); }

  int depth = kDefaultTreeDepth;

  void Free(Node* n, int level) {
    if (n == nullptr) return;
    if (level == depth) {
      delete static_cast<Leaf*>(n);
      return;
    }
    auto* in = static_cast<Interior*>(n);
    for (Node* c : in->child) Free(c, level + 1);
    delete in;
  }

  // The leaf for `bucket`, creating it and its ancestors as needed; marks
  // the whole path dirty.
  Leaf* LeafForWrite(uint32_t bucket) {
    Node** slot = &root;
    for (int level = 0; level < depth; ++level) {
      if (*slot == nullptr) *slot = new Interior;
      (*slot)->dirty = true;
      slot = &static_cast<Interior*>(*slot)->child[NibbleAt(bucket, depth, level)];
    }
    if (*slot == nullptr) {
      *slot = new Leaf;
      ++leaves;
    }
    (*slot)->dirty = true;
    return static_cast<Leaf*>(*slot);
  }

  // The node at (level, prefix), or null if its subtree is empty.
  Node* Find(int level, uint32_t prefix) const {
    Node* n = root;
    for (int step = 0; step < level && n != nullptr; ++step) {
      n = static_cast<Interior*>(n)->child[NibbleAt(prefix, level, step)];
    }
    return n;
  }

  void Rehash(Node* n, int level) {
    if (!n->dirty) return;
    if (level == depth) {
      auto* leaf = static_cast<Leaf*>(n);
      hasher.Update(
          std::span<const uint8_t>(leaf->digests.front().data(), leaf->digests.size() * 32));
    } else {
      auto* in = static_cast<Interior*>(n);
      std::array<uint8_t, 16 * 32> buf{};
      for (int i = 0; i < 16; ++i) {
        if (Node* c = in->child[i]) {
          Rehash(c, level + 1);
          std::memcpy(buf.data() + 32 * i, c->digest.data(), 32);
        }
      }
      hasher.Update(buf);
    }
    n->digest = hasher.Finish();
    n->dirty = false;
  }

  size_t Memory(const Node* n, int level) const {
    if (n == nullptr) return 0;
    if (level == depth) {
      const auto* leaf = static_cast<const Leaf*>(n);
      return Chunk(sizeof(Leaf)) +
             (leaf->digests.capacity() ? Chunk(leaf->digests.capacity() * 32) : 0);
    }
    const auto* in = static_cast<const Interior*>(n);
    size_t total = Chunk(sizeof(Interior));
    for (const Node* c : in->child) total += Memory(c, level + 1);
    return total;
  }
};

MerkleTree::MerkleTree(int depth) : depth_(depth), impl_(std::make_unique<Impl>()) {
  GOSSYNC_CHECK(depth >= kMinTreeDepth && depth <= kMaxTreeDepth);
  impl_->depth = depth;
}

MerkleTree::~MerkleTree() = default;
MerkleTree::MerkleTree(MerkleTree&&) noexcept = default;
MerkleTree& MerkleTree::operator=(MerkleTree&&) noexcept = default;

uint32_t MerkleTree::BucketOf(std::string_view path, int depth) {
  GOSSYNC_CHECK(depth >= kMinTreeDepth && depth <= kMaxTreeDepth);
  const Hash256 h = Sha256(path);
  // The first `depth` hex digits of the hash: its top 4*depth bits.
  const uint32_t top24 = uint32_t{h[0]} << 16 | uint32_t{h[1]} << 8 | h[2];
  return top24 >> (24 - 4 * depth);
}

bool MerkleTree::IsValidNode(int level, uint32_t prefix) const {
  return level >= 0 && level <= depth_ && prefix < (uint32_t{1} << (4 * level));
}

void MerkleTree::Insert(uint32_t bucket, const Hash256& digest) {
  GOSSYNC_CHECK(bucket < bucket_count());
  Leaf* leaf = impl_->LeafForWrite(bucket);
  std::vector<Hash256>& v = leaf->digests;
  auto it = std::lower_bound(v.begin(), v.end(), digest);
  GOSSYNC_CHECK(it == v.end() || *it != digest);
  if (v.size() == v.capacity()) {
    // Grow by ~1/8 instead of doubling: leaves hold ~15 digests at 1M
    // entries, and doubling would waste a quarter of the tree's memory. The
    // extra copying is a few hundred bytes per insert.
    const size_t pos = static_cast<size_t>(it - v.begin());
    v.reserve(v.size() + std::max<size_t>(1, v.size() / 8));
    it = v.begin() + static_cast<std::ptrdiff_t>(pos);
  }
  v.insert(it, digest);
  ++size_;
}

bool MerkleTree::Remove(uint32_t bucket, const Hash256& digest) {
  GOSSYNC_CHECK(bucket < bucket_count());
  // Walk down remembering the slots, so empty nodes can be unlinked on the
  // way back up without a second search.
  std::array<Node**, kMaxTreeDepth + 1> slots{};
  Node** slot = &impl_->root;
  for (int level = 0; level < depth_; ++level) {
    if (*slot == nullptr) return false;
    slots[level] = slot;
    slot = &static_cast<Interior*>(*slot)->child[NibbleAt(bucket, depth_, level)];
  }
  if (*slot == nullptr) return false;
  slots[depth_] = slot;
  auto* leaf = static_cast<Leaf*>(*slot);
  std::vector<Hash256>& v = leaf->digests;
  auto it = std::lower_bound(v.begin(), v.end(), digest);
  if (it == v.end() || *it != digest) return false;
  v.erase(it);
  --size_;
  if (v.capacity() > v.size() + std::max<size_t>(2, v.size() / 4)) v.shrink_to_fit();

  for (int level = 0; level <= depth_; ++level) (*slots[level])->dirty = true;
  if (!v.empty()) return true;
  // Prune: an empty subtree takes no memory and has the zero digest.
  delete leaf;
  *slots[depth_] = nullptr;
  --impl_->leaves;
  for (int level = depth_ - 1; level >= 0; --level) {
    auto* in = static_cast<Interior*>(*slots[level]);
    if (std::any_of(in->child.begin(), in->child.end(), [](Node* c) { return c != nullptr; }))
      break;
    delete in;
    *slots[level] = nullptr;
  }
  return true;
}

void MerkleTree::Replace(uint32_t bucket, const Hash256& old_digest, const Hash256& new_digest) {
  GOSSYNC_CHECK(bucket < bucket_count());
  Node* n = impl_->Find(depth_, bucket);
  GOSSYNC_CHECK(n != nullptr);
  std::vector<Hash256>& v = static_cast<Leaf*>(n)->digests;
  auto old_it = std::lower_bound(v.begin(), v.end(), old_digest);
  GOSSYNC_CHECK(old_it != v.end() && *old_it == old_digest);
  if (old_digest == new_digest) return;
  // Move the slot to its new sorted place by rotating the elements in
  // between: no allocation, and the leaf never goes empty on the way.
  auto new_it = std::lower_bound(v.begin(), v.end(), new_digest);
  GOSSYNC_CHECK(new_it == v.end() || *new_it != new_digest);
  if (new_it > old_it) {
    std::rotate(old_it, old_it + 1, new_it);
    *(new_it - 1) = new_digest;
  } else {
    std::rotate(new_it, old_it, old_it + 1);
    *new_it = new_digest;
  }
  impl_->LeafForWrite(bucket);  // marks the path dirty
}

void MerkleTree::Clear() {
  impl_->Free(impl_->root, 0);
  impl_->root = nullptr;
  impl_->leaves = 0;
  size_ = 0;
}

void MerkleTree::Flush() {
  if (impl_->root != nullptr) impl_->Rehash(impl_->root, 0);
}

const Hash256& MerkleTree::Root() {
  Flush();
  return impl_->root != nullptr ? impl_->root->digest : kZeroHash;
}

Hash256 MerkleTree::Digest(int level, uint32_t prefix) {
  GOSSYNC_CHECK(IsValidNode(level, prefix));
  Flush();
  Node* n = impl_->Find(level, prefix);
  return n != nullptr ? n->digest : kZeroHash;
}

std::array<Hash256, 16> MerkleTree::ChildDigests(int level, uint32_t prefix) {
  GOSSYNC_CHECK(IsValidNode(level, prefix) && level < depth_);
  Flush();
  std::array<Hash256, 16> out{};
  if (auto* in = static_cast<Interior*>(impl_->Find(level, prefix))) {
    for (int i = 0; i < 16; ++i) {
      if (in->child[i] != nullptr) out[i] = in->child[i]->digest;
    }
  }
  return out;
}

std::span<const Hash256> MerkleTree::LeafDigests(uint32_t bucket) const {
  GOSSYNC_CHECK(bucket < bucket_count());
  auto* leaf = static_cast<Leaf*>(impl_->Find(depth_, bucket));
  if (leaf == nullptr) return {};
  return leaf->digests;
}

size_t MerkleTree::leaf_count() const { return impl_->leaves; }

size_t MerkleTree::MemoryBytes() const {
  return Chunk(sizeof(Impl)) + impl_->Memory(impl_->root, 0);
}

namespace {

void Descend(MerkleTree& a, MerkleTree& b, int level, uint32_t prefix, std::vector<uint32_t>* out) {
  const std::array<Hash256, 16> ca = a.ChildDigests(level, prefix);
  const std::array<Hash256, 16> cb = b.ChildDigests(level, prefix);
  for (uint32_t i = 0; i < 16; ++i) {
    if (ca[i] == cb[i]) continue;
    const uint32_t child = prefix * 16 + i;
    if (level + 1 == a.depth()) {
      out->push_back(child);
    } else {
      Descend(a, b, level + 1, child, out);
    }
  }
}

}  // namespace

std::vector<uint32_t> DiffBuckets(MerkleTree& a, MerkleTree& b) {
  GOSSYNC_CHECK(a.depth() == b.depth());
  std::vector<uint32_t> out;
  if (a.Root() != b.Root()) Descend(a, b, 0, 0, &out);
  return out;
}

}  // namespace gossync::core
