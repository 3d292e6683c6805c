#include "agent/core/merkle_tree.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>

#include "tests/unit/core/seed.h"

namespace gossync::core {
namespace {

// The reference: buckets as ordered sets, digests computed straight from
// DESIGN.md section 2 with no caching, no sparseness tricks.
struct Model {
  int depth;
  std::map<uint32_t, std::set<Hash256>> buckets;

  Hash256 Digest(int level, uint32_t prefix) const {
    if (level == depth) {
      auto it = buckets.find(prefix);
      if (it == buckets.end() || it->second.empty()) return kZeroHash;
      std::string bytes;
      for (const Hash256& d : it->second) bytes.append(reinterpret_cast<const char*>(d.data()), 32);
      return Sha256(bytes);
    }
    std::string bytes;
    bool any = false;
    for (uint32_t i = 0; i < 16; ++i) {
      Hash256 c = Digest(level + 1, prefix * 16 + i);
      any |= !IsZero(c);
      bytes.append(reinterpret_cast<const char*>(c.data()), 32);
    }
    return any ? Sha256(bytes) : kZeroHash;
  }

  // Only the subtrees that hold something are visited; empty ones are zero.
  void CheckTree(MerkleTree& t, int level, uint32_t prefix, size_t* checked) const {
    Hash256 want = Digest(level, prefix);
    REQUIRE(t.Digest(level, prefix) == want);
    ++*checked;
    if (level == depth || IsZero(want)) return;
    for (uint32_t i = 0; i < 16; ++i) CheckTree(t, level + 1, prefix * 16 + i, checked);
  }

  MerkleTree Build() const {
    MerkleTree t(depth);
    for (const auto& [b, set] : buckets) {
      for (const Hash256& d : set) t.Insert(b, d);
    }
    return t;
  }

  size_t size() const {
    size_t n = 0;
    for (const auto& [b, set] : buckets) n += set.size();
    return n;
  }
};

Hash256 RandomDigest(std::mt19937_64& rng) {
  Hash256 h;
  for (auto& byte : h) byte = static_cast<uint8_t>(rng());
  return h;
}

// Every node of `a` equals the same node of `b`, walking the union of their
// non-empty subtrees.
void CheckSameNodes(MerkleTree& a, MerkleTree& b, int level, uint32_t prefix) {
  REQUIRE(a.Digest(level, prefix) == b.Digest(level, prefix));
  if (level == a.depth() || IsZero(a.Digest(level, prefix))) return;
  for (uint32_t i = 0; i < 16; ++i) CheckSameNodes(a, b, level + 1, prefix * 16 + i);
}

// One random mutation applied to both the tree and the model.
void RandomOp(std::mt19937_64& rng, MerkleTree& t, Model& m) {
  // Half the time a small set of hot buckets, so leaves grow and empty.
  const uint32_t buckets = t.bucket_count();
  const uint32_t b = rng() % 2 ? static_cast<uint32_t>(rng() % std::min<uint32_t>(buckets, 5))
                               : static_cast<uint32_t>(rng() % buckets);
  auto& set = m.buckets[b];
  switch (rng() % 8) {
    case 0:
    case 1:
    case 2: {  // insert
      Hash256 d = RandomDigest(rng);
      t.Insert(b, d);
      set.insert(d);
      break;
    }
    case 3:
    case 4: {  // remove an existing one
      if (set.empty()) break;
      auto it = set.begin();
      std::advance(it, rng() % set.size());
      REQUIRE(t.Remove(b, *it));
      set.erase(it);
      break;
    }
    case 5: {  // remove one that is not there: no change
      Hash256 root = t.Root();
      REQUIRE_FALSE(t.Remove(b, RandomDigest(rng)));
      REQUIRE(t.Root() == root);
      break;
    }
    case 6: {  // replace
      if (set.empty()) break;
      auto it = set.begin();
      std::advance(it, rng() % set.size());
      Hash256 old = *it, neu = RandomDigest(rng);
      t.Replace(b, old, neu);
      set.erase(old);
      set.insert(neu);
      break;
    }
    case 7:  // read mid-batch, so later changes hit a partly clean tree
      t.Flush();
      break;
  }
  if (set.empty()) m.buckets.erase(b);
}

TEST_CASE("MerkleTree: empty tree root is zero at every depth", "[merkle]") {
  for (int depth = kMinTreeDepth; depth <= kMaxTreeDepth; ++depth) {
    MerkleTree t(depth);
    CHECK(IsZero(t.Root()));
    CHECK(t.size() == 0);
    CHECK(t.leaf_count() == 0);
    CHECK(IsZero(t.Digest(depth, 0)));
    CHECK(t.LeafDigests(t.bucket_count() - 1).empty());
    for (const Hash256& c : t.ChildDigests(0, 0)) CHECK(IsZero(c));
    CHECK(t.MemoryBytes() < 256);  // sparse: nothing allocated per leaf
  }
}

TEST_CASE("MerkleTree: digests follow the definition for a small tree", "[merkle]") {
  MerkleTree t(1);
  Hash256 d1 = Sha256(std::string_view("one")), d2 = Sha256(std::string_view("two"));
  t.Insert(3, d2);
  t.Insert(3, d1);
  std::string leaf_bytes;
  for (const Hash256& d : std::set<Hash256>{d1, d2})
    leaf_bytes.append(reinterpret_cast<const char*>(d.data()), 32);
  Hash256 leaf = Sha256(leaf_bytes);
  CHECK(t.Digest(1, 3) == leaf);
  std::string root_bytes(16 * 32, '\0');
  std::copy(leaf.begin(), leaf.end(), root_bytes.begin() + 3 * 32);
  CHECK(t.Root() == Sha256(root_bytes));
  auto span = t.LeafDigests(3);
  REQUIRE(span.size() == 2);
  CHECK(span[0] < span[1]);
  CHECK(t.size() == 2);
  CHECK(t.leaf_count() == 1);
}

TEST_CASE("MerkleTree: BucketOf is the first depth hex digits of SHA-256(path)", "[merkle]") {
  for (const char* p : {"a", "a/b.txt", "photos/2024/img_0001.jpg", "\xc3\xa9t\xc3\xa9"}) {
    std::string hex = ToHex(Sha256(std::string_view(p)));
    for (int depth = kMinTreeDepth; depth <= kMaxTreeDepth; ++depth) {
      INFO(p << " depth " << depth);
      CHECK(MerkleTree::BucketOf(p, depth) == std::stoul(hex.substr(0, depth), nullptr, 16));
    }
  }
  MerkleTree t;
  CHECK(t.BucketOf("x") == MerkleTree::BucketOf("x", kDefaultTreeDepth));
}

TEST_CASE("MerkleTree: IsValidNode bounds level and prefix", "[merkle]") {
  MerkleTree t(2);
  CHECK(t.IsValidNode(0, 0));
  CHECK_FALSE(t.IsValidNode(0, 1));
  CHECK(t.IsValidNode(1, 15));
  CHECK_FALSE(t.IsValidNode(1, 16));
  CHECK(t.IsValidNode(2, 255));
  CHECK_FALSE(t.IsValidNode(2, 256));
  CHECK_FALSE(t.IsValidNode(3, 0));
  CHECK_FALSE(t.IsValidNode(-1, 0));
  CHECK(t.bucket_count() == 256);
}

TEST_CASE("MerkleTree: removing everything frees every node", "[merkle]") {
  GOSSYNC_SEEDED_RNG(0xfee);
  MerkleTree t(4);
  const size_t empty_bytes = t.MemoryBytes();
  std::vector<std::pair<uint32_t, Hash256>> added;
  for (int i = 0; i < 5000; ++i) {
    added.push_back({static_cast<uint32_t>(rng() % t.bucket_count()), RandomDigest(rng)});
    t.Insert(added.back().first, added.back().second);
  }
  CHECK_FALSE(IsZero(t.Root()));
  CHECK(t.MemoryBytes() > empty_bytes + 5000 * 32);
  std::shuffle(added.begin(), added.end(), rng);
  for (auto& [b, d] : added) REQUIRE(t.Remove(b, d));
  CHECK(IsZero(t.Root()));
  CHECK(t.size() == 0);
  CHECK(t.leaf_count() == 0);
  CHECK(t.MemoryBytes() == empty_bytes);
}

TEST_CASE("MerkleTree: incremental tree equals a rebuilt tree after random operations",
          "[merkle][property]") {
  GOSSYNC_SEEDED_RNG(0x3e6c1e);
  for (int round = 0; round < 40; ++round) {
    const int depth = 1 + round % 4;
    INFO("round " << round << " depth " << depth);
    MerkleTree t(depth);
    Model m{depth, {}};
    const int ops = 50 + static_cast<int>(rng() % 3000);
    for (int i = 0; i < ops; ++i) {
      RandomOp(rng, t, m);
      if (rng() % 500 == 0) {  // an occasional Clear
        t.Clear();
        m.buckets.clear();
      }
      if (i % 97 == 0) {
        MerkleTree fresh = m.Build();
        REQUIRE(t.Root() == fresh.Root());
      }
    }
    REQUIRE(t.size() == m.size());
    REQUIRE(t.leaf_count() == m.buckets.size());
    MerkleTree fresh = m.Build();
    REQUIRE(t.Root() == fresh.Root());
    REQUIRE(t.Root() == m.Digest(0, 0));
    size_t checked = 0;
    m.CheckTree(t, 0, 0, &checked);
    CheckSameNodes(t, fresh, 0, 0);
    for (const auto& [b, set] : m.buckets) {
      auto span = t.LeafDigests(b);
      REQUIRE(std::vector<Hash256>(span.begin(), span.end()) ==
              std::vector<Hash256>(set.begin(), set.end()));
    }
  }
}

TEST_CASE("MerkleTree: ChildDigests and LeafDigests agree with Digest", "[merkle][property]") {
  GOSSYNC_SEEDED_RNG(0xc41d);
  MerkleTree t(3);
  Model m{3, {}};
  for (int i = 0; i < 3000; ++i) RandomOp(rng, t, m);
  for (int probe = 0; probe < 300; ++probe) {
    const int level = static_cast<int>(rng() % 3);
    // Mostly probe nodes that exist: take the prefix of an occupied bucket.
    uint32_t prefix;
    if (!m.buckets.empty() && rng() % 4) {
      auto it = m.buckets.begin();
      std::advance(it, rng() % m.buckets.size());
      prefix = it->first >> (4 * (3 - level));
    } else {
      prefix = static_cast<uint32_t>(rng() % (1u << (4 * level)));
    }
    auto children = t.ChildDigests(level, prefix);
    for (uint32_t i = 0; i < 16; ++i) REQUIRE(children[i] == t.Digest(level + 1, prefix * 16 + i));
  }
  for (uint32_t b = 0; b < t.bucket_count(); ++b) {
    auto span = t.LeafDigests(b);
    Hash256 want = span.empty()
                       ? kZeroHash
                       : Sha256(std::span<const uint8_t>(span.front().data(), span.size() * 32));
    REQUIRE(t.Digest(3, b) == want);
  }
}

TEST_CASE("MerkleTree: diff of identical trees is empty", "[merkle]") {
  GOSSYNC_SEEDED_RNG(0x1d);
  MerkleTree a(4), b(4);
  CHECK(DiffBuckets(a, b).empty());
  for (int i = 0; i < 2000; ++i) {
    std::string path = "dir/" + std::to_string(rng());
    Hash256 d = Sha256(path);
    a.Insert(a.BucketOf(path), d);
    b.Insert(b.BucketOf(path), d);
  }
  // Built in different orders and flushed at different times: same tree.
  b.Flush();
  CHECK(DiffBuckets(a, b).empty());
  CHECK(a.Root() == b.Root());
}

TEST_CASE("MerkleTree: DiffBuckets is exactly the buckets whose entries differ",
          "[merkle][property]") {
  GOSSYNC_SEEDED_RNG(0xd1ff);
  for (int round = 0; round < 30; ++round) {
    const int depth = 1 + round % 4;
    INFO("round " << round << " depth " << depth);
    MerkleTree a(depth);
    Model ma{depth, {}};
    for (int i = 0; i < 1000; ++i) RandomOp(rng, a, ma);
    MerkleTree b = ma.Build();
    Model mb = ma;
    // Diverge both sides a little, sometimes not at all.
    const int changes = static_cast<int>(rng() % 4 == 0 ? 0 : rng() % 40);
    for (int i = 0; i < changes; ++i) {
      const bool side_a = rng() % 2;
      RandomOp(rng, side_a ? a : b, side_a ? ma : mb);
    }
    const Model& xa = ma;
    const Model& xb = mb;
    std::vector<uint32_t> want;
    for (uint32_t bk = 0; bk < a.bucket_count(); ++bk) {
      auto ia = xa.buckets.find(bk), ib = xb.buckets.find(bk);
      std::set<Hash256> sa = ia == xa.buckets.end() ? std::set<Hash256>{} : ia->second;
      std::set<Hash256> sb = ib == xb.buckets.end() ? std::set<Hash256>{} : ib->second;
      if (sa != sb) want.push_back(bk);
    }
    REQUIRE(DiffBuckets(a, b) == want);
    REQUIRE(DiffBuckets(b, a) == want);
    REQUIRE((a.Root() == b.Root()) == want.empty());
  }
}

TEST_CASE("MerkleTree: Replace equals Remove then Insert", "[merkle]") {
  GOSSYNC_SEEDED_RNG(0x4e);
  MerkleTree a(2), b(2);
  std::vector<Hash256> ds;
  for (int i = 0; i < 40; ++i) {
    ds.push_back(RandomDigest(rng));
    a.Insert(7, ds.back());
    b.Insert(7, ds.back());
  }
  for (int i = 0; i < 200; ++i) {
    size_t k = rng() % ds.size();
    Hash256 neu = RandomDigest(rng);
    a.Replace(7, ds[k], neu);
    REQUIRE(b.Remove(7, ds[k]));
    b.Insert(7, neu);
    ds[k] = neu;
    REQUIRE(a.Root() == b.Root());
    auto s = a.LeafDigests(7);
    REQUIRE(std::is_sorted(s.begin(), s.end()));
  }
  a.Replace(7, ds[0], ds[0]);  // no-op
  CHECK(a.Root() == b.Root());
}

TEST_CASE("MerkleTree: moves keep the contents", "[merkle]") {
  MerkleTree a(2);
  a.Insert(1, Sha256(std::string_view("x")));
  Hash256 root = a.Root();
  MerkleTree b = std::move(a);
  CHECK(b.Root() == root);
  CHECK(b.size() == 1);
  MerkleTree c(2);
  c = std::move(b);
  CHECK(c.Root() == root);
}

}  // namespace
}  // namespace gossync::core
