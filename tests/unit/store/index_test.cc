#include "agent/store/index.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "agent/core/hlc.h"
#include "agent/core/merkle_tree.h"
#include "tests/unit/core/seed.h"

namespace gossync::store {
namespace {

namespace fs = std::filesystem;

// A real directory under $TMPDIR, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gossync-index-XXXXXX").string();
    GOSSYNC_CHECK(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string db() const { return path_ + "/index.db"; }

 private:
  std::string path_;
};

IndexOptions Opts(std::string name = "alpha", int depth = 4) {
  IndexOptions o;
  o.node_name = std::move(name);
  o.tree_depth = depth;
  return o;
}

std::unique_ptr<Index> MustOpen(const TempDir& dir, const IndexOptions& o = Opts()) {
  auto r = Index::Open(dir.path(), o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(*r);
}

IndexRecord FileRecord(const std::string& path, uint64_t counter, uint8_t fill = 1) {
  IndexRecord r;
  core::Entry& e = r.entry;
  e.path = path;
  e.kind = core::EntryKind::kFile;
  e.mode = 0644;
  e.size = 100 + counter;
  e.mtime_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(counter);
  e.hash.fill(fill);
  e.vv.Set(0x1234, counter);
  e.hlc = core::Hlc::Pack(1'700'000'000'000, static_cast<uint16_t>(counter));
  e.origin = "alpha";
  r.digest = e.Digest();
  LocalStat s;
  s.kind = e.kind;
  s.mode = e.mode;
  s.size = e.size;
  s.mtime_ns = e.mtime_ns;
  s.ino = 1000 + counter;
  s.dev = 0xfd00;
  r.stat = s;
  return r;
}

// Runs raw SQL on the file, as another process (or an operator) would.
void RawSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

TEST_CASE("Index: a new index has an identity and keeps writes across a reopen", "[index]") {
  TempDir dir;
  core::NodeId id;
  IndexRecord a = FileRecord("a.txt", 1), b = FileRecord("dir/b.txt", 2, 2);
  IndexRecord t = FileRecord("gone", 3, 0);
  t.entry.deleted = true;
  t.entry.mode = 0;
  t.entry.mtime_ns = 0;
  t.entry.size = 0;
  t.entry.hash = core::kZeroHash;
  t.digest = t.entry.Digest();
  t.stat.reset();
  {
    auto index = MustOpen(dir);
    id = index->meta().node_id;
    CHECK(id != 0);
    CHECK(index->meta().node_name == "alpha");
    CHECK(index->meta().counter == 0);
    CHECK(index->meta().tree_depth == 4);
    Index::Batch batch;
    batch.Put(a);
    batch.Put(b);
    batch.Put(t);
    batch.SetCounter(3);
    batch.SetHlc(777);
    REQUIRE(index->Commit(batch).ok());
    CHECK(index->meta().counter == 3);
  }
  CHECK_FALSE(fs::exists(dir.path() + "/index.db.new"));
  auto index = MustOpen(dir);
  CHECK(index->meta().node_id == id);
  CHECK(index->meta().counter == 3);
  CHECK(index->meta().hlc == 777);

  auto got = index->Get("dir/b.txt");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  const IndexRecord& rb = **got;
  CHECK(rb.entry == b.entry);
  CHECK(rb.digest == b.digest);
  CHECK(rb.bucket == core::MerkleTree::BucketOf("dir/b.txt", 4));
  REQUIRE(rb.stat.has_value());
  CHECK(rb.stat->SameFile(*b.stat));
  CHECK(rb.stat->dev == b.stat->dev);

  auto tomb = index->Get("gone");
  REQUIRE(tomb.ok());
  REQUIRE(tomb->has_value());
  CHECK((*tomb)->entry == t.entry);
  CHECK_FALSE((*tomb)->stat.has_value());

  auto none = index->Get("nope");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());

  auto counts = index->Counts();
  REQUIRE(counts.ok());
  CHECK(counts->files == 2);
  CHECK(counts->tombstones == 1);
  CHECK(counts->live() == 2);

  std::vector<std::string> order;
  REQUIRE(index
              ->ForEach([&](const IndexRecord& r) {
                order.push_back(r.entry.path);
                return Status::Ok();
              })
              .ok());
  CHECK(order == std::vector<std::string>{"a.txt", "dir/b.txt", "gone"});

  std::vector<std::string> stat_paths;
  REQUIRE(index
              ->ListStats([&](const StatRow& r) {
                stat_paths.emplace_back(r.path);
                if (r.path == "gone") {
                  CHECK(r.deleted);
                  CHECK_FALSE(r.stat.has_value());
                } else {
                  CHECK(r.stat.has_value());
                }
                return Status::Ok();
              })
              .ok());
  CHECK(stat_paths == order);

  auto bucket = index->GetBucket(rb.bucket);
  REQUIRE(bucket.ok());
  bool found = false;
  for (const IndexRecord& r : *bucket) found |= r.entry.path == "dir/b.txt";
  CHECK(found);

  // A callback's error stops the stream and comes back.
  int seen = 0;
  Status stop = index->ForEach([&](const IndexRecord&) {
    ++seen;
    return Status::Aborted("enough");
  });
  CHECK(stop.code() == Code::kAborted);
  CHECK(seen == 1);

  Index::Batch del;
  del.Delete("a.txt");
  REQUIRE(index->Commit(del).ok());
  CHECK_FALSE(index->Get("a.txt")->has_value());
}

TEST_CASE("Index: a failed commit leaves nothing behind", "[index]") {
  TempDir dir;
  auto index = MustOpen(dir);
  Index::Batch first;
  first.Put(FileRecord("keep", 1));
  first.SetCounter(1);
  REQUIRE(index->Commit(first).ok());

  Index::Batch batch;
  batch.Put(FileRecord("x", 2));
  batch.Put(FileRecord("keep", 3, 9));  // would replace
  batch.Delete("keep");
  IndexRecord bad = FileRecord("y", 4);
  bad.entry.kind = static_cast<core::EntryKind>(9);  // refused by the schema's CHECK
  batch.Put(bad);
  batch.SetCounter(4);
  batch.SetHlc(99);
  Status s = index->Commit(batch);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(index->meta().counter == 1);
  CHECK(index->meta().hlc == 0);

  auto check_untouched = [](Index& ix) {
    CHECK_FALSE(ix.Get("x")->has_value());
    CHECK_FALSE(ix.Get("y")->has_value());
    auto keep = ix.Get("keep");
    REQUIRE(keep.ok());
    REQUIRE(keep->has_value());
    CHECK((*keep)->entry == FileRecord("keep", 1).entry);
  };
  check_untouched(*index);

  // An invalid path is refused before any write.
  Index::Batch bad_path;
  bad_path.Put(FileRecord("a/../b", 5));
  CHECK(index->Commit(bad_path).code() == Code::kInvalidArgument);

  // The connection is usable again, and a reopen sees the same.
  Index::Batch ok;
  ok.Put(FileRecord("z", 5));
  REQUIRE(index->Commit(ok).ok());
  index.reset();
  index = MustOpen(dir);
  check_untouched(*index);
  CHECK(index->Get("z")->has_value());
  CHECK(index->meta().counter == 1);
}

TEST_CASE("Index: a transaction reads its own writes and rolls back unless committed", "[index]") {
  TempDir dir;
  auto index = MustOpen(dir);
  {
    auto txn = index->Begin();
    REQUIRE(txn.ok());
    REQUIRE(txn->Put(FileRecord("a", 1)).ok());
    auto got = txn->Get("a");
    REQUIRE(got.ok());
    CHECK(got->has_value());
    // A refused record leaves the transaction open; the caller gives up.
    IndexRecord bad = FileRecord("b", 2);
    bad.entry.mode = 070000;
    CHECK(txn->Put(bad).code() == Code::kInvalidArgument);
    txn->SetCounter(5);
  }  // dropped: rolled back
  CHECK_FALSE(index->Get("a")->has_value());
  CHECK(index->meta().counter == 0);

  auto txn = index->Begin();
  REQUIRE(txn.ok());
  REQUIRE(txn->Put(FileRecord("a", 1)).ok());
  REQUIRE(txn->Put(FileRecord("b", 2)).ok());
  REQUIRE(txn->Delete("b").ok());
  txn->SetCounter(2);
  txn->SetHlc(42);
  REQUIRE(txn->Commit().ok());
  CHECK(index->meta().counter == 2);
  CHECK(index->meta().hlc == 42);
  index.reset();
  index = MustOpen(dir);
  CHECK(index->Get("a")->has_value());
  CHECK_FALSE(index->Get("b")->has_value());
  CHECK(index->meta().counter == 2);
  CHECK(index->meta().hlc == 42);
}

TEST_CASE("Index: a commit blocked by another writer fails cleanly and can be retried", "[index]") {
  TempDir dir;
  IndexOptions o = Opts();
  o.busy_timeout_ms = 20;
  auto index = MustOpen(dir, o);

  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  Index::Batch batch;
  batch.Put(FileRecord("a", 1));
  batch.SetCounter(1);
  Status s = index->Commit(batch);
  CHECK(s.code() == Code::kUnavailable);
  CHECK(index->meta().counter == 0);
  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);

  REQUIRE(index->Commit(batch).ok());
  CHECK(index->Get("a")->has_value());
  CHECK(index->meta().counter == 1);
}

TEST_CASE("Index: an entry's dot survives the round trip", "[index]") {
  TempDir dir;
  auto index = MustOpen(dir);
  IndexRecord r = FileRecord("a", 7);
  r.entry.dot = {0x1234, 7};
  r.digest = r.entry.Digest();
  Index::Batch batch;
  batch.Put(r);
  REQUIRE(index->Commit(batch).ok());
  index.reset();
  index = MustOpen(dir);
  auto got = index->Get("a");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->entry == r.entry);
  CHECK((*got)->digest == r.digest);
}

TEST_CASE("Index: a schema 1 index migrates to dots, its digests still valid", "[index]") {
  TempDir dir;
  IndexRecord r = FileRecord("a", 3);
  {
    auto index = MustOpen(dir);
    Index::Batch batch;
    batch.Put(r);
    REQUIRE(index->Commit(batch).ok());
  }
  // Back to what schema 1 had on disk.
  RawSql(dir.db(),
         "ALTER TABLE entries DROP COLUMN dot_node; ALTER TABLE entries DROP COLUMN dot_counter; "
         "PRAGMA user_version = 1");
  auto index = MustOpen(dir);
  auto got = index->Get("a");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK_FALSE((*got)->entry.has_dot());
  CHECK((*got)->entry == r.entry);
  CHECK((*got)->digest == (*got)->entry.Digest());  // an entry without a dot digests as before
  index.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == kIndexSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_CASE("Index: refuses an index from a newer schema", "[index]") {
  TempDir dir;
  MustOpen(dir).reset();
  RawSql(dir.db(), "PRAGMA user_version = " + std::to_string(kIndexSchemaVersion + 1));
  auto r = Index::Open(dir.path(), Opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorruption);
  CHECK_THAT(r.status().message(), Catch::Contains("newer than this gossyncd"));
}

TEST_CASE("Index: refuses an index made for another node name", "[index]") {
  TempDir dir;
  MustOpen(dir, Opts("alpha")).reset();
  auto r = Index::Open(dir.path(), Opts("beta"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("\"alpha\"") && Catch::Contains("\"beta\"") &&
                                       Catch::Contains("state_dir"));
  // The rightful owner still opens it.
  MustOpen(dir, Opts("alpha"));
}

TEST_CASE("Index: refuses bad options with a clear error", "[index]") {
  TempDir dir;
  CHECK(Index::Open(dir.path(), Opts("Not A Name")).status().code() == Code::kInvalidArgument);
  CHECK(Index::Open(dir.path(), Opts("alpha", 0)).status().code() == Code::kInvalidArgument);
  CHECK(Index::Open(dir.path() + "/missing", Opts()).status().code() == Code::kIoError);
  CHECK_FALSE(fs::exists(dir.db()));
}

TEST_CASE("Index: a changed tree depth recomputes every bucket", "[index]") {
  TempDir dir;
  {
    auto index = MustOpen(dir, Opts("alpha", 4));
    Index::Batch batch;
    for (int i = 0; i < 50; ++i) batch.Put(FileRecord("f" + std::to_string(i), i + 1));
    REQUIRE(index->Commit(batch).ok());
  }
  auto index = MustOpen(dir, Opts("alpha", 2));
  CHECK(index->meta().tree_depth == 2);
  size_t n = 0;
  REQUIRE(index
              ->ForEach([&](const IndexRecord& r) {
                CHECK(r.bucket == core::MerkleTree::BucketOf(r.entry.path, 2));
                ++n;
                return Status::Ok();
              })
              .ok());
  CHECK(n == 50);
  index.reset();
  CHECK(MustOpen(dir, Opts("alpha", 2))->meta().tree_depth == 2);
}

TEST_CASE("Index: an orphaned WAL is not replayed into a new index", "[index]") {
  TempDir dir;
  {
    auto index = MustOpen(dir);
    Index::Batch batch;
    for (int i = 0; i < 100; ++i) batch.Put(FileRecord("f" + std::to_string(i), i + 1));
    REQUIRE(index->Commit(batch).ok());
    fs::copy_file(dir.db() + "-wal", dir.path() + "/saved-wal");
  }
  // The operator moved index.db aside but left the WAL of the old one.
  fs::rename(dir.db(), dir.path() + "/old.db");
  fs::rename(dir.path() + "/saved-wal", dir.db() + "-wal");
  auto index = MustOpen(dir);
  auto counts = index->Counts();
  REQUIRE(counts.ok());
  CHECK(counts->total() == 0);
  index.reset();
  MustOpen(dir);  // and it stays sound
}

TEST_CASE("Index: a leftover half-built index from a crash is ignored", "[index]") {
  TempDir dir;
  { std::ofstream(dir.path() + "/index.db.new") << "half written"; }
  auto index = MustOpen(dir);
  CHECK(index->meta().node_id != 0);
}

// Expects `dir`'s index to be refused as corrupt, with the recovery in the
// message: at Open when it checks the file, else at the latest at the first
// full pass over the entries (what Replica::Open does).
void ExpectCorrupt(const TempDir& dir) {
  for (bool check : {true, false}) {
    INFO("check_on_open " << check);
    IndexOptions o = Opts();
    o.check_on_open = check;
    auto r = Index::Open(dir.path(), o);
    Status s = r.status();
    if (check) CHECK_FALSE(r.ok());
    if (r.ok()) {
      s = (*r)->ForEachDigest([](uint32_t, const core::Hash256&, core::EntryKind, bool) {});
      if (s.ok()) s = (*r)->Counts().status();
    }
    INFO(s.ToString());
    CHECK(s.code() == Code::kCorruption);
    CHECK_THAT(s.message(), Catch::Contains("index.db") && Catch::Contains("aside"));
  }
}

void FillIndex(const TempDir& dir, int n) {
  auto index = MustOpen(dir);
  Index::Batch batch;
  for (int i = 0; i < n; ++i) {
    batch.Put(FileRecord("some/longer/directory/name/file-" + std::to_string(i), i + 1));
  }
  REQUIRE(index->Commit(batch).ok());
}

TEST_CASE("Index: a truncated index.db is reported as corrupt, not crashed on", "[index]") {
  TempDir dir;
  FillIndex(dir, 3000);
  auto size = fs::file_size(dir.db());
  REQUIRE(size > 100'000);
  SECTION("to zero bytes") { fs::resize_file(dir.db(), 0); }
  SECTION("to 100 bytes") { fs::resize_file(dir.db(), 100); }
  SECTION("to half") { fs::resize_file(dir.db(), size / 2); }
  ExpectCorrupt(dir);
}

TEST_CASE("Index: a scribbled-on index.db is reported as corrupt, not crashed on", "[index]") {
  TempDir dir;
  FillIndex(dir, 3000);
  auto size = fs::file_size(dir.db());
  GOSSYNC_SEEDED_RNG(20240611);
  auto scribble = [&](uint64_t from, uint64_t to) {
    int fd = ::open(dir.db().c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    std::vector<char> junk(to - from);
    for (char& c : junk) c = static_cast<char>(rng());
    REQUIRE(::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(from)) ==
            static_cast<ssize_t>(junk.size()));
    ::close(fd);
  };
  SECTION("over the header") { scribble(0, 100); }
  SECTION("over the pages") { scribble(4096, size); }
  SECTION("over a whole text file") {
    fs::remove(dir.db());
    std::ofstream(dir.db()) << std::string(10000, 'x');
  }
  ExpectCorrupt(dir);
}

TEST_CASE("Index: a SQLite database of another program is not taken for an index", "[index]") {
  TempDir dir;
  RawSql(dir.db(), "CREATE TABLE t (x); INSERT INTO t VALUES (1)");
  auto r = Index::Open(dir.path(), Opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorruption);
  CHECK_THAT(r.status().message(), Catch::Contains("not a gossync index"));
}

TEST_CASE("Index: version vectors round-trip through the compact blob", "[index]") {
  core::VersionVector vv;
  vv.Set(1, 1);
  vv.Set(0xffffffffffffffffull, 0xffffffffffffffffull);
  vv.Set(0x8000, 300);
  std::string blob = EncodeVersionVector(vv);
  CHECK(blob.size() == 3 * 8 + 1 + 10 + 2);
  auto bytes = [](const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  auto back = DecodeVersionVector(bytes(blob));
  REQUIRE(back.ok());
  CHECK(*back == vv);
  CHECK(DecodeVersionVector({})->empty());

  CHECK(DecodeVersionVector(bytes(blob.substr(0, blob.size() - 1))).status().code() ==
        Code::kCorruption);
  CHECK(DecodeVersionVector(bytes(blob.substr(0, 5))).status().code() == Code::kCorruption);
  // A zero counter and an unsorted vector are not valid vectors.
  std::string zero(8, '\0');
  zero.push_back('\0');
  CHECK(DecodeVersionVector(bytes(zero)).status().code() == Code::kCorruption);
  std::string b1 = EncodeVersionVector(core::VersionVector({{2, 1}}));
  std::string b2 = EncodeVersionVector(core::VersionVector({{1, 1}}));
  CHECK(DecodeVersionVector(bytes(b1 + b2)).status().code() == Code::kCorruption);
  // An 11-byte varint overflows 64 bits.
  std::string longer(8, '\0');
  longer += std::string(10, '\xff');
  longer.push_back('\x01');
  CHECK(DecodeVersionVector(bytes(longer)).status().code() == Code::kCorruption);
}

}  // namespace
}  // namespace gossync::store

namespace gossync::store {
namespace {

TEST_CASE("Index: ForEachUnder lists exactly the rows below a directory", "[index]") {
  TempDir dir;
  auto index = MustOpen(dir);
  Index::Batch batch;
  uint64_t n = 0;
  for (const char* p : {"a", "a/x", "a/x/y", "a/z", "a-b", "a0", "ab", "b/a/x", "a.txt"}) {
    batch.Put(FileRecord(p, ++n));
  }
  batch.SetCounter(n);
  REQUIRE(index->Commit(batch).ok());
  auto under = [&](std::string_view d) {
    std::vector<std::string> out;
    REQUIRE(index->ForEachUnder(d, [&](const IndexRecord& r) {
      out.push_back(r.entry.path);
      return Status::Ok();
    }).ok());
    return out;
  };
  CHECK(under("a") == std::vector<std::string>{"a/x", "a/x/y", "a/z"});
  CHECK(under("a/x") == std::vector<std::string>{"a/x/y"});
  CHECK(under("b").size() == 1);
  CHECK(under("nothing").empty());
}

}  // namespace
}  // namespace gossync::store
