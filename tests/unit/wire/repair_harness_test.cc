// Compiles the repair test utilities into unit_wire (tests/CMakeLists.txt
// builds only *_test.cc files into a test binary) and checks them.
#include "tests/testutil/repair_harness.cc"  // NOLINT(bugprone-suspicious-include)

#include <catch2/catch.hpp>

#include "tests/testutil/mem_dataset.cc"  // NOLINT(bugprone-suspicious-include)

namespace gossync::testutil {
namespace {

TEST_CASE("MemDataset: the tree follows puts, and ForEachUnder covers exactly a subtree",
          "[repair_harness]") {
  MemNode n("alpha", 1, 2);
  for (int i = 0; i < 300; ++i) n.WriteFile("f" + std::to_string(i), std::to_string(i));
  for (int i = 0; i < 300; i += 7) n.Remove("f" + std::to_string(i));
  n.Mkdir("d");
  n.Symlink("l", "f1");
  MemDataset copy(2);
  copy.CopyFrom(n.data());
  CHECK(copy.Root() == n.data().Root());
  size_t total = 0;
  for (uint32_t p = 0; p < 16; ++p) {
    REQUIRE(n.data()
                .ForEachUnder(1, p,
                              [&](const core::Entry& e) {
                                CHECK(core::MerkleTree::BucketOf(e.path, 2) / 16 == p);
                                ++total;
                              })
                .ok());
  }
  CHECK(total == n.data().entries().size());
  // Digests of a node's children as the view reports them.
  auto kids = n.data().ChildDigests(0, 0);
  core::MerkleTree t(2);
  for (const auto& [path, e] : n.data().entries()) t.Insert(t.BucketOf(path), e.Digest());
  CHECK(t.ChildDigests(0, 0) == kids);
}

TEST_CASE("MemNode: concurrent edits of a copy have concurrent version vectors",
          "[repair_harness]") {
  MemNode o("origin", 9, 2), a("alpha", 1, 2), b("beta", 2, 2);
  o.WriteFile("x", "base");
  a.CopyFrom(o);
  b.CopyFrom(o);
  a.WriteFile("x", "from a");
  b.WriteFile("x", "from b");
  CHECK(a.data().Find("x")->vv.Compare(b.data().Find("x")->vv) == core::VvOrder::kConcurrent);
  b.Chmod("x", 0600);
  CHECK(b.data().Find("x")->mode == 0600);
  CHECK(*b.data().Content("x") == "from b");
}

}  // namespace
}  // namespace gossync::testutil
