// What a RepairSession asks its driver to do (repair_session.h has the
// contract: which input answers which action), and what it reports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/core/entry.h"
#include "agent/core/hash.h"
#include "agent/core/repair_messages.h"

namespace gossync::core {

// A path that differs, seen from this side (dry run).
struct DiffItem {
  std::string path;
  std::optional<Entry> local;   // nullopt: we lack it
  std::optional<Entry> remote;  // nullopt: the peer lacks it
};
struct DiffReport {
  std::vector<DiffItem> pull;      // we would take the peer's version
  std::vector<DiffItem> push;      // the peer would take ours
  std::vector<DiffItem> conflict;  // concurrent: a winner and a conflict copy
  std::vector<DiffItem> merge;     // concurrent, same content: VVs merge
};

struct SessionStats {
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t unknown_messages = 0;  // types this version does not know, skipped
  uint64_t entries_sent = 0;
  uint64_t entries_received = 0;
  uint64_t entries_applied = 0;  // ApplyMeta, CommitFile, MakeConflictCopy that succeeded
  uint64_t files_pulled = 0;
  uint64_t blocks_received = 0;
  uint64_t blocks_reused = 0;  // already in a temp file or the old local version
  uint64_t blocks_sent = 0;
  uint64_t content_bytes_received = 0;
  uint64_t content_bytes_sent = 0;
  uint64_t conflicts = 0;
  uint64_t merges = 0;
  uint64_t skipped = 0;    // local change won, local error, or the peer could not serve
  uint64_t deferred = 0;   // a path already being applied got another version
  // The last local error that made a path skipped ("PATH: message"), for the
  // session's log line: a full disk or a permission problem shows there.
  std::string last_local_error;
  int descent_levels = 0;  // deepest level compared; depth + 1 once leaves were
  // Tombstone expiry and catch-up (agent/core/catch_up.h).
  uint64_t tombstones_purged = 0;  // expired tombstones the peer lacked, purged here
  uint64_t taken_as_deleted = 0;   // catch-up: old entries a current peer lacked
  uint64_t stale_ignored = 0;      // expired tombstones received for paths we lack
  DiffReport diff;                 // dry run only
};

struct BlockListInfo {
  uint64_t size = 0;
  uint32_t block_size = 0;
  std::vector<Hash256> hashes;  // ceil(size / block_size)
};

namespace repair {
struct Send {
  RepairMessage message;
};
struct Abort {
  std::string counter;  // e.g. "bad_path", "idle_timeout", "peer_abort"
  std::string reason;
  SessionStats stats;
};
struct Finished {
  SessionStats stats;
};
// Open (or reopen: same path and hash) the temp file for `entry`'s content,
// copy into it what can be had locally (blocks of the old version or of any
// local file with these block hashes), and report which blocks it holds.
struct PullFile {
  uint64_t op;
  Entry entry;
  uint32_t block_size;
  std::vector<Hash256> block_hashes;  // [entry.hash] for a one-block file
};
struct WriteBlock {
  uint64_t op;
  std::string path;
  uint32_t index;
  uint64_t offset;
  std::vector<uint8_t> data;  // verified against its block hash
};
// Verify the whole file against entry.hash, move it to entry.path, index it.
struct CommitFile {
  uint64_t op;
  Entry entry;
  std::optional<Entry> expected;
};
struct AbandonPull {
  uint64_t op;
};
// Apply an entry that needs no content from the peer: a directory, symlink
// or tombstone, or a file whose content we already hold (hash unchanged).
struct ApplyMeta {
  uint64_t op;
  Entry entry;
  std::optional<Entry> expected;
};
// Copy (not move: `from` keeps its content until the winner replaces it) the
// local file at `from` to copy.path and index `copy` exactly as given.
// Refused if copy.path exists.
struct MakeConflictCopy {
  uint64_t op;
  std::string from;
  Entry copy;
  std::optional<Entry> expected;  // at `from`
};
// Remove the index row of an expired tombstone, as the purge does, if the
// index still holds exactly `tombstone` (by digest) and, for a directory,
// the directory is gone from disk; else Aborted and nothing changes.
struct PurgeTombstone {
  uint64_t op;
  Entry tombstone;
};
// Serve the peer: read only a path the index holds as a live file with
// `hash` (try alt_path if `path` no longer does), through the no-symlink
// file layer; NotFound if neither, Aborted if the file changed on disk.
struct ReadBlockList {
  uint32_t req;
  std::string path;
  std::string alt_path;  // may be empty
  Hash256 hash;
  uint32_t block_size;
};
struct ReadBlocks {
  uint32_t req;
  std::string path;
  std::string alt_path;
  Hash256 hash;
  uint32_t block_size;
  std::vector<uint32_t> indexes;
};
}  // namespace repair

using RepairAction =
    std::variant<repair::Send, repair::Abort, repair::Finished, repair::PullFile,
                 repair::WriteBlock, repair::CommitFile, repair::AbandonPull, repair::ApplyMeta,
                 repair::MakeConflictCopy, repair::ReadBlockList, repair::ReadBlocks,
                 repair::PurgeTombstone>;

}  // namespace gossync::core
