// The local index (DESIGN.md section 5): one SQLite database,
// `state_dir/index.db`, holding every entry this node knows (live and
// tombstones), the local change-detection fields of each path, and the
// node's identity and counters.
//
// File and durability. WAL mode with synchronous=NORMAL: a commit appends to
// the write-ahead log without an fsync; the log is fsynced at checkpoints.
// So a process crash (kill -9, abort) loses nothing that was committed, and a
// power loss or kernel crash can lose the last few transactions but never
// corrupts the database. That is enough because the data files themselves are
// fsynced by the atomic writer before their index rows are committed, the
// scanner re-derives any local change the index lost from the disk, and the
// few commits that must survive a power loss (the Replica's counter
// reservations) are made with Begin(durable = true), which fsyncs.
//
// Schema. Versioned by PRAGMA user_version and marked with a gossync
// application_id. Opening an older version migrates it forward in one
// transaction; a newer version is refused (an older gossyncd must not write
// rows it does not understand). A new index is built under a temporary name
// and renamed into place, so `index.db` exists only when it is complete.
//
// Corruption. A damaged index.db (truncated, overwritten, not a gossync
// index) is reported as Code::kCorruption with the file's path and the
// recovery: stop gossyncd, move index.db (and index.db-wal, index.db-shm)
// aside, start again. The node then gets a new node id, rescans data_dir as
// new local entries and rejoins the cluster as a new member; versions equal to
// its peers' merge silently, others become conflict copies, so nothing is lost
// (a file deleted on the peers but still on this disk does come back: a live
// version beats a concurrent tombstone).
//
// Threads: an Index is used by one thread at a time (see Replica). It is not
// shared between processes: one gossyncd per state_dir.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/entry.h"
#include "agent/core/hash.h"
#include "agent/core/version_vector.h"
#include "agent/store/local_stat.h"
#include "agent/store/vv_blob.h"
#include "gossync/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gossync::store {

inline constexpr int kIndexSchemaVersion = 2;
inline constexpr char kIndexFileName[] = "index.db";

// The node-wide state kept beside the entries.
struct IndexMeta {
  std::string node_name;     // fixed at creation
  core::NodeId node_id = 0;  // random, nonzero, fixed at creation
  uint64_t counter = 0;      // the node-wide change counter: last value issued
  // A durable upper bound on every counter value ever committed (see
  // Replica): after a power loss `counter` may be stale, this never is.
  uint64_t counter_reserved = 0;
  uint64_t hlc = 0;    // the last HLC timestamp issued or merged
  int tree_depth = 0;  // depth the `bucket` column was computed for
  // The last sync point (core::SyncPoint, agent/core/catch_up.h): wall ms
  // and this node's counter then. Both 0: never synced.
  uint64_t last_sync_ms = 0;
  uint64_t sync_counter = 0;
};

// One row of `entries`.
struct IndexRecord {
  core::Entry entry;
  core::Hash256 digest{};  // entry.Digest(), cached so a restart re-hashes nothing
  uint32_t bucket = 0;     // MerkleTree::BucketOf(entry.path, tree_depth); set by the index
  // The change-detection fields (size, mtime, ino, dev, mode) of the file as
  // last seen on the local disk; nullopt for tombstones and for entries not
  // (yet) on disk. When read back, kind and target are the entry's and
  // ctime_ns is 0 (it is not stored).
  std::optional<LocalStat> stat;
};

// What ListStats streams: enough for the scanner to decide whether a walked
// path must be re-read.
struct StatRow {
  std::string_view path;  // valid during the callback only
  core::EntryKind kind = core::EntryKind::kFile;
  uint32_t mode = 0;  // the entry's permission bits
  bool deleted = false;
  std::optional<LocalStat> stat;  // as in IndexRecord
  core::Hash256 digest{};
};

struct IndexCounts {
  uint64_t files = 0;        // live
  uint64_t directories = 0;  // live
  uint64_t symlinks = 0;     // live
  uint64_t tombstones = 0;
  uint64_t live() const { return files + directories + symlinks; }
  uint64_t total() const { return live() + tombstones; }
};

struct IndexOptions {
  std::string node_name;       // REQUIRES: core::IsValidNodeName
  int tree_depth = 4;          // REQUIRES: core::kMinTreeDepth..kMaxTreeDepth
  int busy_timeout_ms = 5000;  // how long a write waits for a foreign lock
  int cache_kib = 8192;        // SQLite page cache bound (per connection)
  // Run PRAGMA quick_check at open, so a damaged file is refused at start
  // rather than found by a repair session later (about 1 s per million
  // entries with the file in the OS cache).
  bool check_on_open = true;
};

class Index {
 public:
  // Opens `state_dir/index.db`, creating it (and a new node id) if it does
  // not exist. Errors:
  //  - kInvalidArgument: the index belongs to another node name;
  //  - kCorruption: not a gossync index, damaged, or from a newer gossyncd;
  //  - kIoError: state_dir missing or not writable.
  // If the stored tree depth differs from options.tree_depth, every row's
  // bucket is recomputed in one transaction (the depth is a cluster setting
  // that an operator may change on all nodes).
  static Result<std::unique_ptr<Index>> Open(const std::string& state_dir,
                                             const IndexOptions& options);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  const IndexMeta& meta() const { return meta_; }
  const std::string& path() const { return db_path_; }

  // The row at `path`, or nullopt.
  Result<std::optional<IndexRecord>> Get(std::string_view path);
  // The rows of one Merkle leaf, in path order.
  Result<std::vector<IndexRecord>> GetBucket(uint32_t bucket);

  // Streams every row in path order (bytewise, as std::string compares).
  // Stops at, and returns, the first non-OK status of `fn`.
  // REQUIRES: `fn` does not call back into this Index.
  Status ForEach(const std::function<Status(const IndexRecord&)>& fn);
  // At most `limit` rows whose path sorts after `after` (all rows for ""),
  // in path order: a full pass in bounded steps (the tombstone purge).
  // Same rules as ForEach.
  Status ForEachAfter(std::string_view after, size_t limit,
                      const std::function<Status(const IndexRecord&)>& fn);
  // The same for the rows strictly below directory `dir` ("a" yields "a/x"
  // and "a/x/y", not "a" or "ab"), in path order.
  Status ForEachUnder(std::string_view dir, const std::function<Status(const IndexRecord&)>& fn);
  // The rows of Merkle leaves [first, end): the leaves beneath one tree node
  // form such a range. Ordered by bucket, then path. Same rules as ForEach.
  Status ForEachInBuckets(uint32_t first, uint32_t end,
                          const std::function<Status(const IndexRecord&)>& fn);
  // (path, digest) of every row of one leaf, in path order, without decoding
  // the entries: what a repair session lists for a differing leaf. `path` is
  // valid during the callback only. REQUIRES: `fn` does not call this Index.
  Status ForEachDigestInBucket(
      uint32_t bucket,
      const std::function<void(std::string_view path, const core::Hash256& digest)>& fn);
  // Streams (path, kind, mode, deleted, stat, digest) in path order; the
  // scanner's comparison. Same rules as ForEach.
  Status ListStats(const std::function<Status(const StatRow&)>& fn);
  // Streams (bucket, digest, kind, deleted) of every row, unordered: the
  // cheapest full pass, used to load the Merkle tree.
  Status ForEachDigest(const std::function<void(uint32_t bucket, const core::Hash256& digest,
                                                core::EntryKind kind, bool deleted)>& fn);

  // Counted by SQL (a full scan): for checks and tests; Replica keeps its own.
  Result<IndexCounts> Counts();

  // An open write transaction (BEGIN IMMEDIATE): its reads see its own
  // writes; nothing of it is visible to others, or survives a crash, before
  // Commit. Destroying it uncommitted rolls it back. One at a time.
  // REQUIRES: the Index outlives it.
  class Transaction {
   public:
    Transaction(Transaction&& o) noexcept;
    Transaction& operator=(Transaction&&) = delete;
    ~Transaction();

    Result<std::optional<IndexRecord>> Get(std::string_view path) { return index_->Get(path); }
    // Inserts or replaces the row at rec.entry.path; the index computes the
    // bucket. REQUIRES: rec.digest == rec.entry.Digest(). InvalidArgument for
    // an invalid path or a record the schema refuses (the transaction stays
    // open; the caller decides).
    Status Put(const IndexRecord& rec);
    Status Delete(std::string_view path);
    // Meta values written at Commit, and reflected in meta() once committed.
    void SetCounter(uint64_t counter) { counter_ = counter; }
    void SetHlc(uint64_t hlc) { hlc_ = hlc; }
    void SetCounterReserved(uint64_t reserved) { reserved_ = reserved; }
    void SetSyncPoint(uint64_t wall_ms, uint64_t counter) { sync_ = {wall_ms, counter}; }
    // On failure the transaction is rolled back. Either way it is finished.
    Status Commit();

   private:
    friend class Index;
    Transaction(Index* index, bool durable) : index_(index), durable_(durable) {}
    Index* index_;  // null once finished
    bool durable_;
    std::optional<uint64_t> counter_;
    std::optional<uint64_t> hlc_;
    std::optional<uint64_t> reserved_;
    std::optional<std::pair<uint64_t, uint64_t>> sync_;
  };

  // Takes the write lock. Unavailable if another process holds it longer than
  // the busy timeout. A `durable` transaction is fsynced at commit
  // (synchronous=FULL for it alone), so it survives a power loss.
  Result<Transaction> Begin(bool durable = false);

  // A set of writes collected first and applied in ONE transaction by
  // Commit: all or nothing.
  class Batch {
   public:
    void Put(IndexRecord rec);
    void Delete(std::string path);
    void SetCounter(uint64_t counter) { counter_ = counter; }
    void SetHlc(uint64_t hlc) { hlc_ = hlc; }
    bool empty() const { return ops_.empty() && !counter_ && !hlc_; }
    size_t size() const { return ops_.size(); }

   private:
    friend class Index;
    struct Op {
      bool put;
      IndexRecord rec;  // for a delete only rec.entry.path is set
    };
    std::vector<Op> ops_;
    std::optional<uint64_t> counter_;
    std::optional<uint64_t> hlc_;
  };

  // Applies `batch` in one transaction. On failure nothing of it is visible
  // and meta() is unchanged. REQUIRES: no Transaction open.
  Status Commit(const Batch& batch);

 private:
  struct Statements;
  Index(sqlite3* db, std::string db_path);
  Status Prepare();
  Status LoadMeta();
  Status Rebucket(int depth);
  Status Step(sqlite3_stmt* st, std::string_view what);
  Status EachRecord(sqlite3_stmt* st, std::string_view what,
                    const std::function<Status(const IndexRecord&)>& fn);
  Status WriteRecord(const IndexRecord& rec);
  Status DeleteRecord(std::string_view path);
  Status WriteMeta(const char* key, uint64_t value);
  void Rollback();
  void EndTransaction(bool durable);

  sqlite3* db_;
  std::string db_path_;
  IndexMeta meta_;
  std::unique_ptr<Statements> stmts_;
};

}  // namespace gossync::store
