// The on-disk side of a repair session: executes the local actions of a
// core::RepairSession (agent/core/repair_session.h, "Driver contract")
// against data_dir, the temp area and the Replica, and answers each with the
// completion the session expects.
//
// How the daemon uses it, on the store thread (the serialized queue that
// owns the Replica), for each input of a session:
//
//   out = executor.Drive(session, session.OnMessage(now, msg), now);
//
// Drive runs every local action inline, feeds each completion back, and
// returns only what goes to the network (Send, then Abort or Finished).
// Start, OnTick, OnPeerClosed and OnProtocolError go through Drive the same
// way. One executor per session; every executor of a replica shares one
// OpenTemps.
//
// What it guarantees, per action (repair_apply.cc says why):
//  * Nothing is written unless the index still holds the entry the decision
//    was made against (`expected`, by digest) AND the disk still matches the
//    stat the index recorded for it (or is empty where the index has nothing
//    or a tombstone): a local change not yet scanned is never overwritten or
//    deleted. Otherwise the answer is Aborted (the session counts it skipped).
//  * Paths the config ignores are never applied from a peer (PermissionDenied,
//    counted in stats().ignored) nor served.
//  * Files are committed per DESIGN.md section 4 (PendingFile::Commit): temp
//    file, fsync, verify the hash, re-check, rename without following
//    symlinks, fsync the directory; then Replica::ApplyRemote with the new
//    stat, so the scanner's and the watcher's SameFile check skip what we
//    wrote.
//  * Modes: a file gets the permission bits and the sticky bit, never setuid
//    or setgid (a peer must not plant set-id programs). The index keeps the
//    peer's entry as is, so digests still agree, with the stat of the file
//    as written, so neither the scanner nor the watcher (which compare that
//    stat) re-versions it; a later local change of the file does, without
//    those bits. A directory gets its mode exactly: setgid there only
//    passes the directory's group on (no privilege), and the scanner
//    compares a directory's entry mode with the disk, so a stripped bit would
//    be re-versioned by every rescan and stripped cluster-wide.
//  * Missing parent directories are created (0755). One the index does not
//    know becomes a placeholder entry with an EMPTY version vector: every
//    real version of it dominates, so the peer's entry for it (usually later
//    in the same session, since entries come in bucket order, not path
//    order) simply replaces it.
//  * A directory that a live entry needs but the index holds as a tombstone
//    is revived: a live directory, mode 0755, with the tombstone's VV, HLC
//    and origin. Equal VVs with different digests are concurrent
//    (core::Resolve), and a live version beats a tombstone, so it wins over
//    that tombstone everywhere and loses to any later version; and since
//    every node derives the same entry from the same tombstone, two nodes
//    that revive it agree without another round (no counter is bumped).
//  * A directory tombstone removes the directory only if the index holds
//    nothing live beneath it; tombstoned subdirectories still on disk go
//    first. Anything else beneath it (a live entry, a file the index does not
//    know, an ignored file) keeps the directory on disk while the index
//    records the tombstone: the live entries' own tombstones may come later
//    in the session (bucket order). Each later removal beneath it retries the
//    directory (and its tombstoned ancestors). When the session finishes, a
//    kept directory that still holds live entries is revived (as above): they
//    beat the delete. One kept only for files the index does not know stays
//    a tombstone; the scanner records it live again if it is still there.
//  * A directory that a peer's file or symlink should replace but that still
//    holds entries stays (its entries' tombstones may come later in the
//    session). If, when the session finishes, the index still holds live
//    entries beneath it, the directory is re-versioned as a local change
//    (Replica::Reassert): concurrent with the peer's version, it wins the
//    next session's conflict (a directory beats a file) and the peer's
//    content becomes a conflict copy, instead of both sides refusing each
//    other's version forever.
//  * A purge (an expired tombstone the peer lacks, or one catch-up made)
//    removes only the index row that still holds exactly that tombstone,
//    and not while its directory is still on disk (purge.h); nothing on disk
//    changes.
//  * Serving reads only a path the index holds as a live file with the asked
//    hash, through RootDir (no symlink in any component), and only while the
//    file's stat matches the index (else Aborted: "changed").
//
// Thread: one executor is used by one thread at a time, the store thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "agent/core/repair_session.h"
#include "agent/store/atomic_writer.h"
#include "agent/store/fs.h"
#include "agent/store/ignore.h"
#include "agent/store/replica.h"
#include "gossync/status.h"

namespace gossync::store {

// The temp files (by PendingFile::TempName) that some executor holds open.
// Two sessions fetching the same version at once would share one temp file,
// and the second would go on writing into it after the first renamed it into
// place; so the second is refused (Unavailable) and fetches it next time.
class OpenTemps {
 public:
  bool Acquire(const std::string& name) { return names_.insert(name).second; }
  void Release(const std::string& name) { names_.erase(name); }
  size_t size() const { return names_.size(); }
  bool Contains(const std::string& name) const { return names_.count(name) > 0; }

 private:
  std::set<std::string> names_;
};

// What an executor works on. Everything must outlive it.
struct RepairContext {
  Replica* replica = nullptr;
  const RootDir* root = nullptr;  // data_dir
  const TempArea* temp = nullptr;
  const IgnoreMatcher* ignore = nullptr;
  OpenTemps* open_temps = nullptr;
};

// The completion of one local action, to give back to the session.
namespace completion {
struct PullReady {
  uint64_t op;
  Result<std::vector<bool>> have;
};
struct Committed {
  uint64_t op;
  Status status;
};
struct Applied {
  uint64_t op;
  Status status;
};
struct BlockListRead {
  uint32_t req;
  Result<core::BlockListInfo> list;
};
struct BlocksRead {
  uint32_t req;
  Result<std::vector<std::vector<uint8_t>>> blocks;
};
}  // namespace completion
using Completion = std::variant<completion::PullReady, completion::Committed, completion::Applied,
                                completion::BlockListRead, completion::BlocksRead>;

struct ExecutorStats {
  uint64_t pulls_opened = 0;
  uint64_t blocks_in_temp = 0;        // found valid in a resumed temp file
  uint64_t blocks_from_old = 0;       // copied from the old local version
  uint64_t blocks_written = 0;        // WriteBlock
  uint64_t files_committed = 0;       // CommitFile
  uint64_t entries_applied = 0;       // ApplyMeta
  uint64_t copies_made = 0;           // MakeConflictCopy
  uint64_t preconditions_failed = 0;  // Aborted: a local change won
  uint64_t ignored = 0;               // refused: the path is ignored here
  uint64_t parents_created = 0;       // placeholder directories indexed
  uint64_t parents_revived = 0;       // tombstoned directories made live again
  uint64_t dirs_kept = 0;             // directory tombstones whose directory stays for now
  uint64_t dirs_reasserted = 0;       // directories kept over a peer's file or symlink
  uint64_t tombstones_purged = 0;     // PurgeTombstone (purge.h)
  uint64_t reads_served = 0;          // ReadBlockList + ReadBlocks that succeeded
  uint64_t read_errors = 0;
  uint64_t bytes_served = 0;
};

class RepairExecutor {
 public:
  using Actions = core::RepairSession::Actions;

  // REQUIRES: every pointer in `context` set.
  explicit RepairExecutor(RepairContext context);
  // Abandons the pulls still open (their temp files stay, for resuming).
  ~RepairExecutor();
  RepairExecutor(const RepairExecutor&) = delete;
  RepairExecutor& operator=(const RepairExecutor&) = delete;

  // Runs one local action (PullFile, WriteBlock, CommitFile, AbandonPull,
  // ApplyMeta, MakeConflictCopy, PurgeTombstone, ReadBlockList, ReadBlocks)
  // and returns its
  // completion; nullopt for WriteBlock and AbandonPull, which have none.
  // REQUIRES: not a Send, Abort or Finished.
  std::optional<Completion> Execute(const core::RepairAction& action);

  // Gives `c` to the session; returns the session's new actions.
  static Actions Deliver(core::RepairSession& session, int64_t now_ms, Completion c);

  // Executes `actions` and every action their completions lead to, in one
  // FIFO (the contract's order), and returns the Sends, then any Abort or
  // Finished, for the network. After an Abort or Finished it calls
  // EndSession (finished or not).
  //
  // With `defer_commits`, CommitFile actions wait in a batch (their
  // completions too) until a later Drive without it, or until an action
  // that must see them done (ApplyMeta, MakeConflictCopy) or the session's
  // end: the batch is then committed with one fsync per file started
  // together and one per distinct directory (CommitBatch), instead of a
  // journal commit per file and directory. The daemon defers while more
  // frames of the session are already queued, so a batch is what arrived
  // while the previous one was being written.
  Actions Drive(core::RepairSession& session, Actions actions, int64_t now_ms,
                bool defer_commits = false);

  // The session is over: closes open pulls (temp files kept). If it
  // `finished` (every difference was exchanged), revives or re-versions the
  // directories kept for live entries (see above); after an abort they wait
  // for the next session. Idempotent.
  void EndSession(bool finished = false);

  const ExecutorStats& stats() const { return stats_; }
  // The paths this executor changed (on disk and in the index) since the
  // last call, in order, for logs and hooks; a path may repeat.
  std::vector<std::string> TakeAppliedPaths() { return std::exchange(applied_, {}); }

 private:
  struct OpenPull {
    std::string path;
    std::string temp_name;
    std::optional<PendingFile> file;
    Status write_error;
  };

  Result<std::vector<bool>> Pull(const core::repair::PullFile& a);
  void Write(const core::repair::WriteBlock& a);
  Status Commit(const core::repair::CommitFile& a);
  Status Apply(const core::repair::ApplyMeta& a);
  Status Copy(const core::repair::MakeConflictCopy& a);
  Status Purge(const core::repair::PurgeTombstone& a);
  Result<core::BlockListInfo> ReadBlockList(const core::repair::ReadBlockList& a);
  Result<std::vector<std::vector<uint8_t>>> ReadBlocks(const core::repair::ReadBlocks& a);
  void ClosePull(std::map<uint64_t, OpenPull>::iterator it);

  // Commits deferred_ (Drive); pushes one Committed completion per file.
  void CommitBatch(std::deque<Completion>& pending);

  // repair_apply.cc
  struct PublishedFile {
    UniqueFd parent;  // to fsync before indexing
    std::optional<IndexRecord> rec;
    std::optional<LocalStat> stat;  // for the index
  };
  // CommitPulled's checks and rename for a prepared and synced file,
  // without the parent's fsync and the index.
  Status PublishPulled(const core::Entry& e, const std::optional<core::Entry>& expected,
                       PendingFile& file, PublishedFile* out);
  // `content_mismatch`: the temp file's hash is not entry.hash (the only
  // Corruption the session may blame on the peer).
  Status CommitPulled(const core::Entry& e, const std::optional<core::Entry>& expected,
                      PendingFile& file, bool* content_mismatch);
  Status ApplyFileMeta(const core::Entry& e, const std::optional<IndexRecord>& rec,
                       const std::optional<LocalStat>& cur);
  Status ApplyDirectory(const core::Entry& e, const std::optional<IndexRecord>& rec,
                        const std::optional<LocalStat>& cur);
  Status ApplySymlink(const core::Entry& e, const std::optional<IndexRecord>& rec,
                      const std::optional<LocalStat>& cur);
  Status ApplyTombstone(const core::Entry& e, const std::optional<IndexRecord>& rec,
                        const std::optional<LocalStat>& cur);
  // Clears the way for a new kind at `path`: removes the file, symlink or
  // empty directory `rec` describes, if the disk still matches it.
  Status RemoveForKindChange(const std::string& path, const std::optional<IndexRecord>& rec,
                             const std::optional<LocalStat>& cur);
  // Creates the missing directories above `path` and indexes them.
  Status EnsureParents(const std::string& path);
  // Before a pulled file goes to `e.path`: the index still holds `expected`,
  // the disk still matches the index (or what held another kind is removed),
  // and the parents exist. Sets the index record and the precondition the
  // rename must meet.
  Status ReadyForFile(const core::Entry& e, const std::optional<core::Entry>& expected,
                      std::optional<IndexRecord>* rec, Precondition* pre);
  // Removes the directories above `path` that the index holds as tombstones
  // and that are empty now.
  void RemoveEmptyTombstonedParents(const std::string& path);
  // Makes `tomb`'s directory exist (mode 0755) and indexes it revived.
  Status Revive(const IndexRecord& tomb);
  // The index row at `path` if it is `expected` (by digest) or a directory
  // this executor made in its place that `target` beats too; else Aborted.
  Result<std::optional<IndexRecord>> IndexHolds(const std::string& path,
                                                const std::optional<core::Entry>& expected,
                                                const core::Entry& target);
  // The current lstat of `path` (target filled for a symlink); nullopt if
  // absent (also beneath a file or a symlink: not in our tree); Aborted for
  // a special file.
  Result<std::optional<LocalStat>> Current(const std::string& path);
  // Indexes one change and maps its precondition failure.
  Status Index(core::Entry e, const std::optional<IndexRecord>& rec, std::optional<LocalStat> stat);
  Status Refused(Status s);  // counts an Aborted

  RepairContext ctx_;
  std::map<uint64_t, OpenPull> pulls_;
  std::vector<std::string> kept_dirs_;     // directory tombstones left on disk
  std::vector<std::string> blocked_dirs_;  // directories a new kind could not replace
  std::vector<std::string> applied_;
  std::vector<core::repair::CommitFile> deferred_;
  ExecutorStats stats_;
};

// The mode set on disk for a file entry's mode: setuid and setgid stripped.
uint32_t DiskMode(uint32_t entry_mode);

}  // namespace gossync::store
