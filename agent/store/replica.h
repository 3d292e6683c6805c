// The local engine (DESIGN.md sections 1, 2 and 5): turns what the scanner
// and the watcher see on disk into versioned entries, keeps them in the
// Index, and keeps the Merkle tree over their digests.
//
// A Replica owns its Index, a core::MerkleTree, a core::Hlc, the node id and
// the node-wide change counter. Nothing per entry is held in memory but the
// tree's digests; entries are read from the index when needed.
//
// Counters and power loss: the index commits with synchronous=NORMAL, so a
// power loss may drop its last commits while peers already hold the versions
// they made. Reissuing those counters for other content would make two
// different versions look identical. So counters are reserved kCounterBlock
// at a time by a commit that IS fsynced, and a reopened replica continues
// above the reservation. A restart leaves a gap of unused counters, which
// is harmless: a version vector needs its counters increasing, not dense.
//
// Threads: NOT thread-safe. A Replica is used by one thread at a time: the
// daemon runs every call on one serialized work queue, off the loop thread
// (calls do SQLite I/O). The loop reads root() and counts() only through
// results posted back from that queue.
//
// Consistency: every mutation commits the index first (entries, counter and
// HLC in one transaction) and updates the tree only after the commit
// succeeded, so the tree never shows a state the index does not hold; a
// failed call leaves the replica as it was.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/catch_up.h"
#include "agent/core/entry.h"
#include "agent/core/hash.h"
#include "agent/core/hlc.h"
#include "agent/core/merkle_tree.h"
#include "agent/store/index.h"
#include "agent/store/local_stat.h"
#include "gossync/status.h"

namespace gossync::store {

// How many counters one durable reservation covers (one fsync each).
inline constexpr uint64_t kCounterBlock = 4096;

// Wall-clock milliseconds since the epoch. Injected so tests can step it.
using WallClock = std::function<uint64_t()>;

// One entry that ApplyLocal changed.
struct EntryChange {
  core::Entry entry;           // the new version
  core::Hash256 old_digest{};  // zero if the path was not in the index
  core::Hash256 new_digest{};
};

struct Changes {
  std::vector<EntryChange> changed;  // new versions, in path order
  size_t stat_refreshed = 0;         // paths whose local stat fields alone moved
  // Observations refused (invalid path, a file without its content hash),
  // with the reason; the rest of the batch was applied.
  std::vector<std::pair<std::string, std::string>> rejected;
  core::Hash256 root{};  // the tree's root after the change
};

// FullScanDiff's answer. Indices refer to the `walked` vector.
struct ScanDiff {
  // New paths, paths that were tombstones, and paths whose LocalStat is not
  // SameFile as the index's: they must be (re)hashed and given to
  // ApplyLocal. (Directories and symlinks need no file read.)
  std::vector<size_t> to_hash;
  // Same file as the index says (a directory whose mode and kind match,
  // whatever its mtime): no work.
  std::vector<size_t> unchanged;
  // Live index entries the walk did not find: to become tombstones
  // (ApplyLocal with stat == nullopt). In path order.
  std::vector<std::string> missing;
};

// One version a repair session decided to hold (a peer's entry, a merged
// history, a conflict copy, a placeholder parent directory), for ApplyRemote.
struct RemoteChange {
  core::Entry entry;  // indexed exactly as given (it must match the peer's digest)
  // The digest the index must hold at entry.path for this change to apply;
  // nullopt: the index must hold no row there.
  std::optional<core::Hash256> expected;
  // The path as it is on the local disk now, after the write (what the
  // scanner's SameFile check compares with); nullopt for a tombstone, or to
  // make the scanner re-read the path.
  std::optional<LocalStat> stat;
};

// ApplyRemote's answer.
struct RemoteChanges {
  // Per change, in input order: OK; Aborted (the index no longer holds
  // `expected`: a local change won the race; nothing of that change was
  // applied); InvalidArgument (core::ValidateEntry refused the entry).
  std::vector<Status> status;
  size_t applied = 0;
  core::Hash256 root{};  // the tree's root after the change
};

class Replica {
 public:
  struct Options {
    std::string node_name;                     // REQUIRES: core::IsValidNodeName
    int tree_depth = core::kDefaultTreeDepth;  // cluster-wide
    WallClock clock;                           // REQUIRES: non-null
    IndexOptions index;                        // node_name and tree_depth are taken from above
  };

  // Opens (or creates) the index in `state_dir` and loads every entry digest
  // into the tree; nothing is re-hashed. Errors: those of Index::Open.
  static Result<std::unique_ptr<Replica>> Open(const std::string& state_dir, Options options);
  // Shorthand with default index options.
  static Result<std::unique_ptr<Replica>> Open(const std::string& state_dir,
                                               const std::string& node_name, int tree_depth,
                                               WallClock clock);

  // Applies what the scanner or the watcher saw, in ONE index transaction:
  //  - unchanged content and metadata: nothing (the stat fields are
  //    refreshed if they moved, e.g. a new inode after an atomic replace
  //    with identical bytes);
  //  - a new or changed path, or a path that was a tombstone: a new version
  //    with vv[self] = ++counter, hlc = Now(), origin = this node;
  //  - a gone path (stat == nullopt) that is live in the index: a tombstone
  //    (deleted, hash zero) with the same bump; already a tombstone or
  //    unknown: nothing.
  // A directory's mtime is not part of its version. If a path appears more
  // than once, the last observation counts. REQUIRES: a file observation
  // carries its content hash (a symlink's is computed here).
  // On error nothing was applied and the replica is unchanged.
  Result<Changes> ApplyLocal(std::vector<Observation> observations);

  // Indexes versions that came from a peer (repair), in ONE transaction,
  // after their files were written: each entry exactly as given, with its
  // local stat, if the index still holds `expected` at its path. Remote
  // versions never bump this node's counter (their VV is the peer's; only
  // local changes bump). The entries' HLCs are merged into ours
  // (core::Hlc::Update) and persisted with them. The tree follows once the
  // commit succeeded. A change that fails its precondition or validation is
  // reported in `status` and the others still apply; an index error fails
  // the whole call and leaves the replica unchanged. If a path appears more
  // than once, each change sees the ones before it.
  Result<RemoteChanges> ApplyRemote(std::vector<RemoteChange> changes);

  // Records a new local version of the live entry at `path`, unchanged in
  // content and metadata: vv[self] = ++counter, hlc = Now(), origin = this
  // node. For a local decision to keep an entry that a peer's version could
  // not replace (a directory that still holds live entries): the new version
  // is concurrent with the peer's, so both sides resolve it (a directory
  // beats a file) instead of refusing it forever. NotFound if `path` holds
  // no live entry. Same transaction and counter rules as ApplyLocal.
  Result<EntryChange> Reassert(std::string_view path);

  // Removes the index rows of tombstones (path, digest), each only if the
  // index still holds exactly that tombstone, in ONE transaction; the tree
  // and the counts follow. Nothing on disk changes. Returns how many went.
  // For the tombstone purge (purge.h); an index error leaves all in place.
  Result<size_t> PurgeTombstones(const std::vector<std::pair<std::string, core::Hash256>>& rows);

  // The last sync point (agent/core/catch_up.h), kept in the index meta.
  core::SyncPoint sync_point() const {
    return {index_->meta().last_sync_ms, index_->meta().sync_counter};
  }
  // Records `p` as the last sync point; each field only moves forward (two
  // sessions may finish out of order). One small transaction.
  Status RecordSync(const core::SyncPoint& p);
  // The injected wall clock, ms since the epoch.
  uint64_t WallNow() const { return clock_(); }

  // Compares a full walk (stat only; hashes not known yet) with the index,
  // streaming the index in path order. REQUIRES: every walked observation
  // has a stat and paths are unique (InvalidArgument otherwise).
  Result<ScanDiff> FullScanDiff(const std::vector<Observation>& walked);

  const core::Hash256& root() { return tree_.Root(); }
  // Live files, directories and symlinks; tombstones apart.
  const IndexCounts& counts() const { return counts_; }
  core::NodeId node_id() const { return index_->meta().node_id; }
  const std::string& node_name() const { return index_->meta().node_name; }
  uint64_t counter() const { return counter_; }
  uint64_t hlc() const { return hlc_.last(); }

  Result<std::optional<IndexRecord>> Get(std::string_view path) { return index_->Get(path); }
  // The entries of one leaf, for repair.
  Result<std::vector<IndexRecord>> GetBucket(uint32_t bucket) { return index_->GetBucket(bucket); }
  // For ChildDigests / LeafDigests during repair. Mutated only by Replica.
  core::MerkleTree& tree() { return tree_; }
  Index& index() { return *index_; }

  // How long Open took to load the tree, for the log line at start.
  uint64_t load_ms() const { return load_ms_; }

 private:
  Replica(std::unique_ptr<Index> index, WallClock clock);
  void CountAdd(core::EntryKind kind, bool deleted, int64_t delta);

  std::unique_ptr<Index> index_;
  WallClock clock_;
  core::MerkleTree tree_;
  core::Hlc hlc_;
  uint64_t counter_;   // last counter issued
  uint64_t reserved_;  // durable bound: counters up to it need no fsync
  IndexCounts counts_;
  uint64_t load_ms_ = 0;
};

}  // namespace gossync::store
