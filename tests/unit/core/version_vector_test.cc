#include "agent/core/version_vector.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "tests/unit/core/seed.h"

namespace gossync::core {
namespace {

VersionVector Vv(std::vector<VvPair> pairs) { return VersionVector(std::move(pairs)); }

TEST_CASE("VersionVector: compare gives all four orders", "[vv]") {
  VersionVector empty;
  VersionVector a = Vv({{1, 3}, {5, 2}});
  CHECK(a.Compare(a) == VvOrder::kEqual);
  CHECK(empty.Compare(empty) == VvOrder::kEqual);
  CHECK(a.Compare(Vv({{1, 3}, {5, 2}})) == VvOrder::kEqual);

  CHECK(a.Compare(Vv({{1, 2}, {5, 2}})) == VvOrder::kGreater);  // a counter higher
  CHECK(a.Compare(Vv({{1, 3}})) == VvOrder::kGreater);          // a node the other lacks
  CHECK(a.Compare(empty) == VvOrder::kGreater);
  CHECK(a.Compare(Vv({{1, 4}, {5, 2}})) == VvOrder::kLess);
  CHECK(a.Compare(Vv({{1, 3}, {2, 1}, {5, 2}})) == VvOrder::kLess);
  CHECK(empty.Compare(a) == VvOrder::kLess);

  CHECK(a.Compare(Vv({{1, 4}, {5, 1}})) == VvOrder::kConcurrent);
  CHECK(a.Compare(Vv({{1, 3}, {2, 1}})) ==
        VvOrder::kConcurrent);  // each has a node the other lacks
  CHECK(Vv({{1, 1}}).Compare(Vv({{2, 1}})) == VvOrder::kConcurrent);
  CHECK(Vv({{9, 1}}).Compare(Vv({{1, 1}, {9, 1}, {10, 1}})) == VvOrder::kLess);
}

TEST_CASE("VersionVector: compare agrees with a map-based model on random vectors", "[vv]") {
  GOSSYNC_SEEDED_RNG(0x5eed0001);
  for (int iter = 0; iter < 2000; ++iter) {
    std::map<NodeId, uint64_t> ma, mb;
    for (NodeId n = 1; n <= 5; ++n) {
      if (rng() % 2) ma[n] = 1 + rng() % 3;
      if (rng() % 2) mb[n] = 1 + rng() % 3;
    }
    std::vector<VvPair> pa, pb;
    for (auto [n, c] : ma) pa.push_back({n, c});
    for (auto [n, c] : mb) pb.push_back({n, c});
    VersionVector a(pa), b(pb);
    bool a_ge = true, b_ge = true;
    for (NodeId n = 1; n <= 5; ++n) {
      uint64_t ca = ma.count(n) ? ma[n] : 0, cb = mb.count(n) ? mb[n] : 0;
      if (ca < cb) a_ge = false;
      if (cb < ca) b_ge = false;
    }
    VvOrder want = a_ge && b_ge ? VvOrder::kEqual
                   : a_ge       ? VvOrder::kGreater
                   : b_ge       ? VvOrder::kLess
                                : VvOrder::kConcurrent;
    REQUIRE(a.Compare(b) == want);
    // The merge dominates (or equals) both sides and is their least upper bound.
    VersionVector m = a;
    m.Merge(b);
    REQUIRE(VersionVector::Valid(m.pairs()));
    REQUIRE(m.Compare(a) != VvOrder::kLess);
    REQUIRE(m.Compare(a) != VvOrder::kConcurrent);
    REQUIRE(m.Compare(b) != VvOrder::kLess);
    REQUIRE(m.Compare(b) != VvOrder::kConcurrent);
    for (NodeId n = 1; n <= 5; ++n) REQUIRE(m.Get(n) == std::max(a.Get(n), b.Get(n)));
    VersionVector m2 = b;
    m2.Merge(a);
    REQUIRE(m2 == m);
  }
}

TEST_CASE("VersionVector: merge is the pointwise maximum", "[vv]") {
  VersionVector a = Vv({{1, 3}, {4, 1}});
  a.Merge(Vv({{0, 7}, {1, 2}, {4, 9}, {8, 1}}));
  CHECK(a == Vv({{0, 7}, {1, 3}, {4, 9}, {8, 1}}));
  VersionVector e;
  e.Merge(a);
  CHECK(e == a);
  a.Merge(VersionVector());
  CHECK(e == a);
}

TEST_CASE("VersionVector: Set records a local change and keeps the order", "[vv]") {
  VersionVector v;
  v.Set(5, 1);
  v.Set(2, 4);
  v.Set(9, 2);
  v.Set(5, 10);
  CHECK(v == Vv({{2, 4}, {5, 10}, {9, 2}}));
  CHECK(v.Get(5) == 10);
  CHECK(v.Get(3) == 0);
  CHECK(VersionVector::Valid(v.pairs()));
  VersionVector before = v;
  v.Set(2, 5);
  CHECK(v.Compare(before) == VvOrder::kGreater);
}

TEST_CASE("VersionVector: Valid rejects unsorted, duplicate and zero entries", "[vv]") {
  CHECK(VersionVector::Valid({}));
  CHECK(VersionVector::Valid({{0, 1}}));
  CHECK(VersionVector::Valid({{1, 1}, {2, UINT64_MAX}, {UINT64_MAX, 1}}));
  CHECK_FALSE(VersionVector::Valid({{1, 0}}));
  CHECK_FALSE(VersionVector::Valid({{2, 1}, {1, 1}}));
  CHECK_FALSE(VersionVector::Valid({{1, 1}, {1, 2}}));
  CHECK_FALSE(VersionVector::Valid({{1, 1}, {2, 0}}));
}

TEST_CASE("VersionVector: ToString shows node ids in hex", "[vv]") {
  CHECK(VersionVector().ToString() == "{}");
  CHECK(Vv({{0x1a2b, 3}, {0x9f00, 7}}).ToString() == "{1a2b:3, 9f00:7}");
}

}  // namespace
}  // namespace gossync::core
