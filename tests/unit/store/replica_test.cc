#include "agent/store/replica.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>

#include "agent/core/path.h"
#include "tests/unit/core/seed.h"

namespace gossync::store {
namespace {

namespace fs = std::filesystem;
using core::EntryKind;

constexpr uint64_t kT = 1'764'151'700'000;  // 2025-11-26, in ms

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gossync-replica-XXXXXX").string();
    GOSSYNC_CHECK(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A test's replica with a steppable wall clock.
struct Fixture {
  TempDir dir;
  uint64_t now_ms = kT;
  std::unique_ptr<Replica> replica;

  explicit Fixture(int depth = 4, int busy_timeout_ms = 5000) : depth_(depth) {
    busy_timeout_ms_ = busy_timeout_ms;
    Reopen();
  }
  void Reopen() {
    replica.reset();
    Replica::Options o;
    o.node_name = "alpha";
    o.tree_depth = depth_;
    o.clock = [this] { return now_ms; };
    o.index.busy_timeout_ms = busy_timeout_ms_;
    auto r = Replica::Open(dir.path(), std::move(o));
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    replica = std::move(*r);
  }
  Changes Apply(std::vector<Observation> obs) {
    auto r = replica->ApplyLocal(std::move(obs));
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    return std::move(*r);
  }
  IndexRecord Must(const std::string& path) {
    auto r = replica->Get(path);
    REQUIRE(r.ok());
    REQUIRE(r->has_value());
    return **r;
  }
  core::NodeId self() const { return replica->node_id(); }

 private:
  int depth_;
  int busy_timeout_ms_;
};

core::Hash256 H(uint8_t b) {
  core::Hash256 h;
  h.fill(b);
  return h;
}

LocalStat FileStat(uint64_t size, int64_t mtime, uint64_t ino, uint32_t mode = 0644) {
  LocalStat s;
  s.kind = EntryKind::kFile;
  s.mode = mode;
  s.size = size;
  s.mtime_ns = mtime;
  s.ino = ino;
  s.dev = 7;
  return s;
}

Observation File(std::string path, uint8_t content, int64_t mtime = 1000, uint64_t ino = 1,
                 uint32_t mode = 0644) {
  return Observation{std::move(path), FileStat(100 + content, mtime, ino, mode), H(content)};
}

Observation Dir(std::string path, int64_t mtime = 5, uint32_t mode = 0755, uint64_t ino = 2) {
  LocalStat s;
  s.kind = EntryKind::kDirectory;
  s.mode = mode;
  s.mtime_ns = mtime;
  s.ino = ino;
  s.size = 4096;
  return Observation{std::move(path), s, {}};
}

Observation Link(std::string path, std::string target, int64_t mtime = 9) {
  LocalStat s;
  s.kind = EntryKind::kSymlink;
  s.mode = 0777;
  s.size = target.size();
  s.mtime_ns = mtime;
  s.ino = 3;
  s.target = std::move(target);
  return Observation{std::move(path), s, {}};
}

Observation Gone(std::string path) { return Observation{std::move(path), std::nullopt, {}}; }

// The tree a fresh process would build from the index, re-hashing every entry.
core::Hash256 RebuiltRoot(Replica& r) {
  core::MerkleTree tree(r.tree().depth());
  REQUIRE(r.index()
              .ForEach([&](const IndexRecord& rec) {
                core::Hash256 d = rec.entry.Digest();
                CHECK(d == rec.digest);
                CHECK(rec.bucket == tree.BucketOf(rec.entry.path));
                tree.Insert(tree.BucketOf(rec.entry.path), d);
                return Status::Ok();
              })
              .ok());
  return tree.Root();
}

TEST_CASE("Replica: create, edit, delete and recreate version a file", "[replica]") {
  Fixture f;
  const core::NodeId self = f.self();
  CHECK(self != 0);
  const core::Hash256 empty_root = f.replica->root();

  Changes c = f.Apply({File("a.txt", 1)});
  REQUIRE(c.changed.size() == 1);
  CHECK(c.changed[0].old_digest == core::kZeroHash);
  CHECK(c.changed[0].new_digest == c.changed[0].entry.Digest());
  CHECK(c.root == f.replica->root());
  CHECK(c.root != empty_root);
  IndexRecord a = f.Must("a.txt");
  CHECK(a.entry.vv.pairs() == std::vector<core::VvPair>{{self, 1}});
  CHECK(a.entry.dot == core::VvPair{self, 1});  // this change made the content
  CHECK(a.entry.origin == "alpha");
  CHECK(a.entry.hash == H(1));
  CHECK(a.entry.size == 101);
  CHECK(a.entry.mtime_ns == 1000);
  CHECK(a.entry.mode == 0644);
  CHECK(core::Hlc::Millis(a.entry.hlc) == kT);
  CHECK(core::ValidateEntry(a.entry).ok());
  CHECK(f.replica->counter() == 1);
  CHECK(f.replica->counts().files == 1);

  // Seen again, unchanged: nothing.
  c = f.Apply({File("a.txt", 1)});
  CHECK(c.changed.empty());
  CHECK(c.stat_refreshed == 0);
  CHECK(f.replica->counter() == 1);

  // Edited.
  f.now_ms += 10;
  c = f.Apply({File("a.txt", 2, 2000)});
  REQUIRE(c.changed.size() == 1);
  CHECK(c.changed[0].old_digest == a.digest);
  a = f.Must("a.txt");
  CHECK(a.entry.vv.pairs() == std::vector<core::VvPair>{{self, 2}});
  CHECK(a.entry.dot == core::VvPair{self, 2});
  CHECK(a.entry.hash == H(2));

  // Atomically replaced by identical bytes with the same mtime: a new inode
  // only, so the stat is refreshed and there is no new version.
  c = f.Apply({File("a.txt", 2, 2000, /*ino=*/99)});
  CHECK(c.changed.empty());
  CHECK(c.stat_refreshed == 1);
  IndexRecord refreshed = f.Must("a.txt");
  CHECK(refreshed.entry == a.entry);
  CHECK(refreshed.stat->ino == 99);

  // A touch (mtime only) and a chmod are new versions.
  c = f.Apply({File("a.txt", 2, 3000, 99)});
  CHECK(c.changed.size() == 1);
  c = f.Apply({File("a.txt", 2, 3000, 99, 0600)});
  CHECK(c.changed.size() == 1);
  CHECK(f.Must("a.txt").entry.mode == 0600);
  CHECK(f.replica->counter() == 4);

  // Deleted: a tombstone with the next counter.
  const core::Hash256 before_delete = f.replica->root();
  c = f.Apply({Gone("a.txt")});
  REQUIRE(c.changed.size() == 1);
  IndexRecord t = f.Must("a.txt");
  CHECK(t.entry.deleted);
  CHECK(t.entry.hash == core::kZeroHash);
  CHECK(t.entry.kind == EntryKind::kFile);
  CHECK(t.entry.vv.pairs() == std::vector<core::VvPair>{{self, 5}});
  CHECK_FALSE(t.entry.has_dot());  // a tombstone has none
  CHECK_FALSE(t.stat.has_value());
  CHECK(core::ValidateEntry(t.entry).ok());
  CHECK(f.replica->root() != before_delete);
  CHECK(f.replica->counts().files == 0);
  CHECK(f.replica->counts().tombstones == 1);

  // Gone again, or never known: nothing.
  c = f.Apply({Gone("a.txt"), Gone("never/was")});
  CHECK(c.changed.empty());
  CHECK_FALSE(f.replica->Get("never/was")->has_value());

  // Recreated with the very content it had: still a new version.
  c = f.Apply({File("a.txt", 2, 2000)});
  REQUIRE(c.changed.size() == 1);
  a = f.Must("a.txt");
  CHECK(a.entry.live());
  CHECK(a.entry.vv.pairs() == std::vector<core::VvPair>{{self, 6}});
  CHECK(a.entry.dot == core::VvPair{self, 6});
  CHECK(f.replica->counts().files == 1);
  CHECK(f.replica->counts().tombstones == 0);
  CHECK(f.replica->root() == RebuiltRoot(*f.replica));
}

TEST_CASE("Replica: directories and symlinks", "[replica]") {
  Fixture f;
  Changes c = f.Apply({Dir("d"), Link("d/l", "../target")});
  REQUIRE(c.changed.size() == 2);
  IndexRecord d = f.Must("d");
  CHECK(d.entry.kind == EntryKind::kDirectory);
  CHECK(d.entry.mtime_ns == 0);
  CHECK(d.entry.hash == core::kZeroHash);
  IndexRecord l = f.Must("d/l");
  CHECK(l.entry.target == "../target");
  CHECK(l.entry.hash == core::Sha256("../target"));
  CHECK(l.entry.size == 9);
  CHECK(core::ValidateEntry(d.entry).ok());
  CHECK(core::ValidateEntry(l.entry).ok());
  CHECK(f.replica->counts().directories == 1);
  CHECK(f.replica->counts().symlinks == 1);

  // A directory's mtime moves with its children: not a change.
  c = f.Apply({Dir("d", /*mtime=*/12345)});
  CHECK(c.changed.empty());
  CHECK(c.stat_refreshed == 0);
  // Its mode is.
  c = f.Apply({Dir("d", 12345, 0700)});
  CHECK(c.changed.size() == 1);
  // A retargeted symlink is.
  c = f.Apply({Link("d/l", "elsewhere")});
  CHECK(c.changed.size() == 1);
  // A file replacing the symlink is a new version of the path.
  c = f.Apply({File("d/l", 4)});
  REQUIRE(c.changed.size() == 1);
  CHECK(f.Must("d/l").entry.kind == EntryKind::kFile);
  CHECK(f.replica->counts().symlinks == 0);
  CHECK(f.replica->counts().files == 1);
  // A deleted symlink's tombstone is valid too.
  f.Apply({Link("s", "x")});
  f.Apply({Gone("s")});
  CHECK(core::ValidateEntry(f.Must("s").entry).ok());
}

TEST_CASE("Replica: a batch takes the last observation of a path and rejects bad ones alone",
          "[replica]") {
  Fixture f;
  Observation no_hash = File("nohash", 1);
  no_hash.hash = core::kZeroHash;
  Changes c =
      f.Apply({File("x", 1), File("../evil", 1), File("x", 2), no_hash, File("y", 3), Gone("y")});
  CHECK(c.rejected.size() == 2);
  // "y" was created and removed within the batch: its last word is "gone".
  REQUIRE(c.changed.size() == 1);
  CHECK(c.changed[0].entry.path == "x");
  CHECK(f.Must("x").entry.hash == H(2));
  CHECK_FALSE(f.replica->Get("y")->has_value());
  CHECK(f.replica->counter() == 1);
}

TEST_CASE("Replica: the counter and the HLC survive a reopen and never go back", "[replica]") {
  Fixture f;
  f.Apply({File("a", 1), File("b", 1)});
  uint64_t hlc = f.replica->hlc();
  CHECK(f.replica->counter() == 2);
  CHECK(hlc == f.Must("b").entry.hlc);

  // The wall clock steps back an hour across a restart. The counter goes on
  // above its durable reservation (a gap, never a reuse).
  f.now_ms = kT - 3'600'000;
  f.Reopen();
  const uint64_t restart = f.replica->counter();
  CHECK(restart == 2 + kCounterBlock);
  CHECK(f.replica->hlc() == hlc);
  f.Apply({File("a", 2)});
  IndexRecord a = f.Must("a");
  CHECK(a.entry.hlc > hlc);
  CHECK(a.entry.vv.Get(f.self()) == restart + 1);

  // And back again, within one process.
  f.now_ms = 1;
  f.Apply({File("b", 2)});
  CHECK(f.Must("b").entry.hlc > a.entry.hlc);
  CHECK(f.Must("b").entry.vv.Get(f.self()) == restart + 2);
  f.Reopen();
  CHECK(f.replica->counter() > restart + 2);
  CHECK(f.replica->hlc() == f.Must("b").entry.hlc);
}

TEST_CASE("Replica: no counter is reused when a power loss drops the last commits", "[replica]") {
  Fixture f;
  const std::string db = f.dir.path() + "/index.db";
  f.Apply({File("a", 1)});  // takes a durable reservation
  // What survives a power loss: the state after the last fsynced commit.
  // With the connection idle, copying the file and its WAL is such an image.
  const std::string snap = f.dir.path() + "/snap";
  fs::create_directory(snap);
  fs::copy_file(db, snap + "/index.db");
  fs::copy_file(db + "-wal", snap + "/index.db-wal");

  f.Apply({File("a", 2)});  // an ordinary commit: peers may already have it
  const core::VersionVector lost = f.Must("a").entry.vv;
  f.replica.reset();
  fs::copy_file(snap + "/index.db", db, fs::copy_options::overwrite_existing);
  fs::copy_file(snap + "/index.db-wal", db + "-wal", fs::copy_options::overwrite_existing);
  fs::remove(db + "-shm");

  f.Reopen();
  CHECK(f.Must("a").entry.hash == H(1));  // the last commit is gone
  // The scanner finds the file changed again: a version that dominates the
  // lost one, not one that collides with it.
  f.Apply({File("a", 3)});
  CHECK(f.Must("a").entry.vv.Compare(lost) == core::VvOrder::kGreater);
}

TEST_CASE("Replica: a reopen restores the same root and counts from the index", "[replica]") {
  Fixture f(/*depth=*/3);
  std::vector<Observation> obs;
  for (int i = 0; i < 300; ++i) {
    obs.push_back(File("dir" + std::to_string(i % 7) + "/f" + std::to_string(i),
                       static_cast<uint8_t>(i % 200 + 1)));
  }
  for (int i = 0; i < 7; ++i) obs.push_back(Dir("dir" + std::to_string(i)));
  f.Apply(std::move(obs));
  f.Apply({Gone("dir1/f1"), Gone("dir2/f2")});
  const core::Hash256 root = f.replica->root();
  const IndexCounts counts = f.replica->counts();
  const core::NodeId id = f.self();
  f.Reopen();
  CHECK(f.replica->root() == root);
  CHECK(f.replica->counts().files == counts.files);
  CHECK(f.replica->counts().directories == counts.directories);
  CHECK(f.replica->counts().tombstones == counts.tombstones);
  CHECK(counts.files == 298);
  CHECK(counts.tombstones == 2);
  CHECK(f.self() == id);
  CHECK(f.replica->tree().size() == 307);
  CHECK(RebuiltRoot(*f.replica) == root);
}

TEST_CASE("Replica: a reopen takes the cached digests without re-hashing", "[replica]") {
  Fixture f;
  f.Apply({File("a", 1), File("b", 2)});
  const core::Hash256 root = f.replica->root();
  f.replica.reset();
  // Replace one cached digest behind the replica's back. Had Open re-hashed
  // the entries, the root would not move.
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((f.dir.path() + "/index.db").c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "UPDATE entries SET digest = zeroblob(32) WHERE path = 'a'", nullptr,
                         nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  f.Reopen();
  CHECK(f.replica->root() != root);
}

TEST_CASE("Replica: a failed commit leaves the tree, counter and counts as they were",
          "[replica]") {
  Fixture f(4, /*busy_timeout_ms=*/20);
  f.Apply({File("a", 1)});
  const core::Hash256 root = f.replica->root();
  const uint64_t counter = f.replica->counter();

  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open((f.dir.path() + "/index.db").c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto r = f.replica->ApplyLocal({File("a", 2), File("b", 3)});
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(f.replica->root() == root);
  CHECK(f.replica->counter() == counter);
  CHECK(f.replica->counts().files == 1);
  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);

  CHECK(f.Must("a").entry.hash == H(1));
  f.Apply({File("a", 2), File("b", 3)});
  CHECK(f.replica->counter() == counter + 2);
  CHECK(f.replica->root() == RebuiltRoot(*f.replica));
}

TEST_CASE("Replica: FullScanDiff sorts a walk into to-hash, unchanged and missing", "[replica]") {
  Fixture f;
  f.Apply({File("a", 1), File("b", 2), File("c", 3), Dir("d"), Link("s", "t"), File("t", 4),
           File("z", 5)});
  f.Apply({Gone("t")});

  std::vector<Observation> walk = {
      File("z", 5),                  // unchanged (walk order does not matter)
      File("a", 1),                  // unchanged
      File("b", 2, /*mtime=*/9999),  // stat moved
      Dir("d", /*mtime=*/777),       // a directory's mtime alone: unchanged
      Link("s", "t"),                // unchanged
      File("n", 6),                  // new
      File("t", 4),                  // was a tombstone
  };
  for (Observation& o : walk) o.hash = core::kZeroHash;  // not hashed yet
  auto r = f.replica->FullScanDiff(walk);
  REQUIRE(r.ok());
  auto paths = [&](const std::vector<size_t>& idx) {
    std::vector<std::string> out;
    for (size_t i : idx) out.push_back(walk[i].path);
    return out;
  };
  CHECK(paths(r->to_hash) == std::vector<std::string>{"b", "n", "t"});
  CHECK(paths(r->unchanged) == std::vector<std::string>{"a", "d", "s", "z"});
  CHECK(r->missing == std::vector<std::string>{"c"});

  // An empty walk: every live entry is missing.
  auto empty = f.replica->FullScanDiff({});
  REQUIRE(empty.ok());
  CHECK(empty->missing == std::vector<std::string>{"a", "b", "c", "d", "s", "z"});

  CHECK(f.replica->FullScanDiff({Gone("a")}).status().code() == Code::kInvalidArgument);
  CHECK(f.replica->FullScanDiff({File("a", 1), File("a", 1)}).status().code() ==
        Code::kInvalidArgument);
}

// The model of one path for the property test.
struct ModelEntry {
  bool live = false;
  EntryKind kind = EntryKind::kFile;
  uint8_t content = 0;
  int64_t mtime = 0;
  uint32_t mode = 0;
  uint64_t ino = 0;
  uint64_t counter = 0;  // vv[self]
};

TEST_CASE("Replica: after random local changes the tree equals one rebuilt from the index",
          "[replica][property]") {
  GOSSYNC_SEEDED_RNG(0x5eed5eed);
  Fixture f(/*depth=*/2);
  const std::vector<std::string> universe = {
      "a", "b", "c/d", "c/e", "c", "f/g/h", "f/g", "f", "x y", "é", "long/name/with/many/parts.txt",
      "z"};
  std::map<std::string, ModelEntry> model;
  uint64_t counter = 0, last_hlc = 0;
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };

  for (int step = 0; step < 400; ++step) {
    std::vector<Observation> batch;
    size_t n = 1 + pick(6);
    for (size_t i = 0; i < n; ++i) {
      const std::string& p = universe[pick(universe.size())];
      switch (pick(6)) {
        case 0:
          batch.push_back(Gone(p));
          break;
        case 1:
          batch.push_back(Dir(p, static_cast<int64_t>(rng() % 50), pick(2) ? 0755 : 0700, pick(3)));
          break;
        case 2:
          batch.push_back(Link(p, pick(2) ? "t1" : "t2", static_cast<int64_t>(pick(3))));
          break;
        default:
          batch.push_back(File(p, static_cast<uint8_t>(1 + pick(3)), static_cast<int64_t>(pick(3)),
                               pick(3), pick(2) ? 0644 : 0600));
      }
    }
    // The clock wanders, backwards too.
    f.now_ms = kT + rng() % 100'000 - 50'000;

    // Expected changes, from the model (last observation of a path wins).
    std::map<std::string, const Observation*> last;
    for (const Observation& o : batch) last[o.path] = &o;
    std::map<std::string, bool> expect_change;
    for (auto& [p, o] : last) {
      ModelEntry& m = model[p];
      bool change;
      if (!o->stat) {
        change = m.live;
      } else {
        const LocalStat& s = *o->stat;
        bool is_dir = s.kind == EntryKind::kDirectory;
        change = !m.live || m.kind != s.kind || m.mode != s.mode ||
                 (!is_dir && m.mtime != s.mtime_ns) ||
                 (s.kind == EntryKind::kFile && m.content != o->hash[0]) ||
                 (s.kind == EntryKind::kSymlink && m.content != static_cast<uint8_t>(s.target[1]));
      }
      expect_change[p] = change;
    }

    Changes c = f.Apply(batch);
    std::map<std::string, const EntryChange*> got;
    for (const EntryChange& ch : c.changed) got[ch.entry.path] = &ch;
    for (auto& [p, change] : expect_change) {
      INFO("step " << step << " path " << p);
      REQUIRE(got.count(p) == (change ? 1u : 0u));
      if (!change) continue;
      const core::Entry& e = got[p]->entry;
      ++counter;
      CHECK(e.vv.Get(f.self()) > model[p].counter);
      CHECK(e.vv.pairs().size() == 1);
      CHECK(e.hlc > last_hlc);
      CHECK(core::ValidateEntry(e).ok());
      ModelEntry& m = model[p];
      m.counter = e.vv.Get(f.self());
      const Observation* o = last[p];
      m.live = o->stat.has_value();
      if (m.live) {
        m.kind = o->stat->kind;
        m.mode = o->stat->mode;
        m.mtime = o->stat->mtime_ns;
        m.content = m.kind == EntryKind::kFile      ? o->hash[0]
                    : m.kind == EntryKind::kSymlink ? static_cast<uint8_t>(o->stat->target[1])
                                                    : 0;
      }
    }
    for (const EntryChange& ch : c.changed) last_hlc = std::max(last_hlc, ch.entry.hlc);
    REQUIRE(f.replica->counter() == counter);

    IndexCounts want;
    for (auto& [p, m] : model) {
      if (m.counter == 0) continue;
      if (!m.live)
        ++want.tombstones;
      else if (m.kind == EntryKind::kFile)
        ++want.files;
      else if (m.kind == EntryKind::kDirectory)
        ++want.directories;
      else
        ++want.symlinks;
    }
    CHECK(f.replica->counts().files == want.files);
    CHECK(f.replica->counts().directories == want.directories);
    CHECK(f.replica->counts().symlinks == want.symlinks);
    CHECK(f.replica->counts().tombstones == want.tombstones);
    REQUIRE(f.replica->root() == RebuiltRoot(*f.replica));

    if (step % 50 == 49) {
      const core::Hash256 root = f.replica->root();
      f.Reopen();
      REQUIRE(f.replica->root() == root);
      REQUIRE(f.replica->counter() > counter);
      counter = f.replica->counter();
    }
  }
}

}  // namespace
}  // namespace gossync::store
