// ReplicaDataset (the DatasetView over a real Replica) and
// Replica::ApplyRemote, on a real index in a temp directory.
#include "agent/store/replica_dataset.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "agent/core/hlc.h"
#include "agent/core/merkle_tree.h"
#include "tests/testutil/replica_pair.h"
#include "tests/unit/core/seed.h"

namespace gossync::store {
namespace {

using core::Entry;
using core::EntryKind;
using testutil::ReplicaNode;

// A version as a peer would send it.
Entry Remote(const std::string& path, const std::string& content, core::NodeId node,
             uint64_t counter, uint64_t hlc) {
  Entry e;
  e.path = path;
  e.kind = EntryKind::kFile;
  e.mode = 0644;
  e.size = content.size();
  e.mtime_ns = 1'700'000'000'000'000'000;
  e.hash = core::Sha256(content);
  e.vv.Set(node, counter);
  e.hlc = hlc;
  e.origin = "peer";
  return e;
}

TEST_CASE("ReplicaDataset: buckets, keys, subtrees and digests match the index and the tree",
          "[replica_dataset]") {
  ReplicaNode n("alpha", {}, 2);
  GOSSYNC_SEEDED_RNG(7);
  for (int i = 0; i < 200; ++i) n.Write("f" + std::to_string(i), std::to_string(rng()));
  n.Mkdir("d");
  n.Symlink("f1", "d/l");
  n.Scan();
  for (int i = 0; i < 200; i += 9) n.Remove("f" + std::to_string(i));
  n.Scan();
  ReplicaDataset view(&n.replica());
  REQUIRE(view.depth() == 2);
  CHECK(view.EntryCount() == 202);
  CHECK(view.Root() == n.replica().root());

  // Every entry, by subtree of every level-1 node: each exactly once, in the
  // right subtree.
  std::set<std::string> seen;
  for (uint32_t p = 0; p < 16; ++p) {
    REQUIRE(view.ForEachUnder(1, p,
                              [&](const Entry& e) {
                                CHECK(core::MerkleTree::BucketOf(e.path, 2) / 16 == p);
                                CHECK(seen.insert(e.path).second);
                              })
                .ok());
  }
  CHECK(seen.size() == 202);
  size_t all = 0;
  REQUIRE(view.ForEachUnder(0, 0, [&](const Entry&) { ++all; }).ok());
  CHECK(all == 202);
  size_t leaf_total = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    size_t under = 0;
    REQUIRE(view.ForEachUnder(2, b, [&](const Entry&) { ++under; }).ok());
    auto keys = view.ListBucket(b);
    REQUIRE(keys.ok());
    CHECK(keys->size() == under);
    CHECK(std::is_sorted(keys->begin(), keys->end()));
    leaf_total += keys->size();
    // Keys and digests are those of the index rows.
    auto rows = n.replica().GetBucket(b);
    REQUIRE(rows.ok());
    std::set<core::KeyDigest> want;
    for (const IndexRecord& r : *rows)
      want.insert({core::PathKey(r.entry.path), core::Truncate(r.digest)});
    CHECK(std::set<core::KeyDigest>(keys->begin(), keys->end()) == want);
    // EntriesByKeys returns exactly the asked subset.
    if (keys->size() >= 2) {
      std::vector<uint64_t> ask{(*keys)[0].key, keys->back().key};
      auto got = view.EntriesByKeys(b, ask);
      REQUIRE(got.ok());
      CHECK(got->size() == 2);
      for (const Entry& e : *got)
        CHECK(std::count(ask.begin(), ask.end(), core::PathKey(e.path)) == 1);
    }
  }
  CHECK(leaf_total == 202);
  // The child digests are the tree's.
  core::MerkleTree t(2);
  REQUIRE(n.replica()
              .index()
              .ForEach([&](const IndexRecord& r) {
                t.Insert(t.BucketOf(r.entry.path), r.digest);
                return Status::Ok();
              })
              .ok());
  CHECK(view.ChildDigests(0, 0) == t.ChildDigests(0, 0));
  CHECK(view.ChildDigests(1, 5) == t.ChildDigests(1, 5));
  CHECK(view.Root() == t.Root());
  auto g = view.Get("d/l");
  REQUIRE(g.ok());
  REQUIRE(g->has_value());
  CHECK((*g)->kind == EntryKind::kSymlink);
  auto none = view.Get("nope");
  REQUIRE(none.ok());
  CHECK(!none->has_value());
}

TEST_CASE("Replica::ApplyRemote: indexes the peer's entry as given, without bumping our counter",
          "[replica_dataset]") {
  ReplicaNode n("alpha");
  n.Write("x", "local");
  n.Scan();
  const uint64_t counter = n.replica().counter();
  const uint64_t hlc_before = n.replica().hlc();
  auto old = n.replica().Get("x");
  REQUIRE(old.ok());
  REQUIRE(old->has_value());

  // A peer's newer version (its VV dominates ours), with an HLC an hour ahead.
  Entry e = Remote("x", "remote", 42, 7, core::Hlc::Pack(n.clock_ms + 3'600'000, 3));
  e.vv.Merge((*old)->entry.vv);
  LocalStat st;
  st.kind = EntryKind::kFile;
  st.mode = 0644;
  st.size = 6;
  st.mtime_ns = e.mtime_ns;
  st.ino = 99;
  std::vector<RemoteChange> changes(1);
  changes[0] = RemoteChange{e, (*old)->digest, st};
  auto r = n.replica().ApplyRemote(changes);
  REQUIRE(r.ok());
  CHECK(r->applied == 1);
  CHECK(r->status[0].ok());
  CHECK(r->root == n.replica().root());
  auto now = n.replica().Get("x");
  REQUIRE(now.ok());
  CHECK((*now)->entry == e);
  CHECK((*now)->stat->ino == 99);
  CHECK(n.replica().counter() == counter);
  // The HLC merged the peer's: our next local change is stamped after it.
  CHECK(n.replica().hlc() > e.hlc);
  CHECK(n.replica().hlc() > hlc_before);
  CHECK(n.replica().counts().files == 1);

  // Persisted: a reopened replica has the same root, HLC and entry.
  const core::Hash256 root = n.replica().root();
  const uint64_t hlc = n.replica().hlc();
  n.Reopen();
  CHECK(n.replica().root() == root);
  CHECK(n.replica().hlc() == hlc);

  // The tree equals one built from scratch over the index.
  core::MerkleTree t(n.replica().tree().depth());
  REQUIRE(n.replica()
              .index()
              .ForEach([&](const IndexRecord& rec) {
                t.Insert(t.BucketOf(rec.entry.path), rec.digest);
                return Status::Ok();
              })
              .ok());
  CHECK(t.Root() == n.replica().root());
}

TEST_CASE("Replica::ApplyRemote: a stale precondition or an invalid entry skips that change only",
          "[replica_dataset]") {
  ReplicaNode n("alpha");
  n.Write("a", "a");
  n.Scan();
  auto a = n.replica().Get("a");
  REQUIRE(a.ok());
  const core::Hash256 root = n.replica().root();

  std::vector<RemoteChange> changes;
  // Expects "a" absent, but it is there.
  changes.push_back({Remote("a", "peer a", 5, 1, 1), std::nullopt, std::nullopt});
  // Expects a digest "b" never had.
  changes.push_back({Remote("b", "b", 5, 2, 1), (*a)->digest, std::nullopt});
  // Invalid: a path with "..".
  changes.push_back({Remote("../c", "c", 5, 3, 1), std::nullopt, std::nullopt});
  // Fine: a new path, then a tombstone of it in the same batch.
  changes.push_back({Remote("d", "d", 5, 4, 1), std::nullopt, std::nullopt});
  Entry tomb = Remote("d", "", 5, 5, 2);
  tomb.deleted = true;
  tomb.size = 0;
  tomb.mode = 0;
  tomb.mtime_ns = 0;
  tomb.hash = {};
  changes.push_back({tomb, changes[3].entry.Digest(), std::nullopt});
  auto r = n.replica().ApplyRemote(changes);
  REQUIRE(r.ok());
  REQUIRE(r->status.size() == 5);
  CHECK(r->status[0].code() == Code::kAborted);
  CHECK(r->status[1].code() == Code::kAborted);
  CHECK(r->status[2].code() == Code::kInvalidArgument);
  CHECK(r->status[3].ok());
  CHECK(r->status[4].ok());
  CHECK(r->applied == 2);
  CHECK(r->root != root);
  CHECK(n.replica().counts().files == 1);
  CHECK(n.replica().counts().tombstones == 1);
  auto d = n.replica().Get("d");
  REQUIRE(d.ok());
  CHECK((*d)->entry.deleted);
  CHECK(!(*d)->stat.has_value());
  auto aa = n.replica().Get("a");
  CHECK((*aa)->digest == (*a)->digest);

  // Nothing applicable: nothing changes.
  auto none = n.replica().ApplyRemote({{Remote("a", "x", 5, 9, 1), std::nullopt, std::nullopt}});
  REQUIRE(none.ok());
  CHECK(none->applied == 0);
  CHECK(none->root == n.replica().root());
}

}  // namespace
}  // namespace gossync::store

namespace gossync::store {
namespace {

TEST_CASE("Replica::Reassert: a new local version of an unchanged entry", "[replica_dataset]") {
  testutil::ReplicaNode n("alpha");
  n.Mkdir("d", 0750);
  n.Scan();
  auto before = n.replica().Get("d");
  REQUIRE(before.ok());
  const uint64_t counter = n.replica().counter();
  auto c = n.replica().Reassert("d");
  REQUIRE(c.ok());
  CHECK(c->entry.vv.Get(n.replica().node_id()) == counter + 1);
  CHECK(c->entry.dot == core::VvPair{n.replica().node_id(), counter + 1});
  CHECK(c->entry.vv.Compare((*before)->entry.vv) == core::VvOrder::kGreater);
  CHECK(c->entry.mode == 0750);
  CHECK(c->old_digest == (*before)->digest);
  CHECK(n.replica().counter() == counter + 1);
  auto after = n.replica().Get("d");
  CHECK((*after)->entry == c->entry);
  CHECK((*after)->stat.has_value());
  // The tree follows, and a rescan finds nothing new.
  core::MerkleTree t(n.replica().tree().depth());
  REQUIRE(n.replica()
              .index()
              .ForEach([&](const IndexRecord& r) {
                t.Insert(t.BucketOf(r.entry.path), r.digest);
                return Status::Ok();
              })
              .ok());
  CHECK(t.Root() == n.replica().root());
  CHECK(n.Scan().changed.empty());
  CHECK(n.replica().Reassert("nope").status().code() == Code::kNotFound);
}

}  // namespace
}  // namespace gossync::store
