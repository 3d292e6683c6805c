// One repair session (agent/wire/PROTOCOL.md), either role, as a pure state
// machine: it is driven by inputs (time passed in, messages, completions of
// work it asked for) and returns actions. It never blocks, never reads a
// clock, never does I/O; it reads the local dataset through a DatasetView.
//
// Driver contract (agent/daemon's repair driver; tests/testutil/mem_dataset.h):
//  * Every input returns the actions to execute, in order. Send actions are
//    written to the peer in that order (encode with wire::EncodeMessageFrame).
//  * Start(now) once, when TLS is up. Then OnMessage for every decoded frame,
//    in stream order; OnProtocolError for a framing or decoding error
//    (counter "frame_too_large", "malformed", "limit_exceeded", ...);
//    OnPeerClosed when the stream ends (a cut inside a frame is a protocol
//    error "truncated" first); OnTick now and then (timeouts, e.g. every 1 s).
//  * Local work: PullFile, WriteBlock, CommitFile, AbandonPull, ApplyMeta and
//    MakeConflictCopy are executed one after another in the order emitted
//    (one FIFO on the store thread): a MakeConflictCopy runs before a later
//    CommitFile of the same path, every WriteBlock of a pull before its
//    CommitFile. Each changes the index and the tree (visible through the
//    DatasetView) before its completion is reported:
//      PullFile{op}          -> OnPullReady(op, blocks already in the temp file)
//      WriteBlock{op}        -> nothing; a failed write fails the CommitFile
//      CommitFile{op}        -> OnCommitted(op, status)
//      ApplyMeta{op}         -> OnApplied(op, status)
//      MakeConflictCopy{op}  -> OnApplied(op, status)
//      AbandonPull{op}       -> nothing (close the temp file, keep its bytes)
//    Serving the peer (any order, any thread, answered by req):
//      ReadBlockList{req}    -> OnBlockListRead(req, list or error)
//      ReadBlocks{req}       -> OnBlocksRead(req, blocks or error)
//    Every local action carries `expected`: the local entry the decision was
//    made against (nullopt: the path was absent). If the index no longer
//    holds exactly that (by digest), the driver changes nothing and answers
//    Aborted: the local change wins this round (counted as skipped).
//  * Abort{..} and Finished{..} end the session: close the connection after
//    writing the preceding Sends (an Abort from us is preceded by an ABORT
//    message). Then drop the session; pulls still open are abandoned (their
//    temp files kept for the next session) and late completions ignored.
//    Only the initiator's session emits Finished while the connection is up;
//    the responder's emits it when the initiator closes after FIN_ACK.
//
// Thread: one owner (the loop or store thread); not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/core/dataset_view.h"
#include "agent/core/entry.h"
#include "agent/core/repair_messages.h"
#include "gossync/status.h"

namespace gossync::core {

struct RepairOptions {
  bool initiator = false;
  std::string local_name;          // HELLO name
  std::string peer_name;           // the peer's certificate name; HELLO must match
  uint64_t hlc = 0;                // our HLC, for HELLO
  bool dry_run = false;            // `gossync diff`: move nothing, report
  std::optional<Hash256> peer_root;  // initiator: the root gossip last reported
  uint32_t block_size = kDefaultBlockSize;  // both sides must agree
  size_t max_in_flight_blocks = kMaxInFlightBlocks;
  size_t max_active_pulls = 64;      // files being fetched at once
  size_t max_active_large_pulls = 4;  // of them, files of more than one block
  int64_t idle_timeout_ms = 30'000;        // without a frame from the peer
  int64_t session_timeout_ms = 3'600'000;  // in all
};

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
  uint64_t entries_applied = 0;   // ApplyMeta, CommitFile, MakeConflictCopy that succeeded
  uint64_t files_pulled = 0;
  uint64_t blocks_received = 0;
  uint64_t blocks_reused = 0;     // already in a temp file or the old local version
  uint64_t blocks_sent = 0;
  uint64_t content_bytes_received = 0;
  uint64_t content_bytes_sent = 0;
  uint64_t conflicts = 0;
  uint64_t merges = 0;
  uint64_t skipped = 0;   // local change won, local error, or the peer could not serve
  uint64_t deferred = 0;  // a path already being applied got another version
  int descent_levels = 0;  // deepest level compared; depth + 1 once leaves were
  DiffReport diff;         // dry run only
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
                 repair::MakeConflictCopy, repair::ReadBlockList, repair::ReadBlocks>;

class RepairSession {
 public:
  using Actions = std::vector<RepairAction>;

  // `view` must outlive the session. REQUIRES: view->depth() valid.
  RepairSession(RepairOptions options, DatasetView* view);
  ~RepairSession();
  RepairSession(const RepairSession&) = delete;
  RepairSession& operator=(const RepairSession&) = delete;

  // Initiator: HELLO, and NODES(1) unless the roots are known to be equal.
  // Responder: HELLO. `now_ms` is any monotonic clock in milliseconds.
  Actions Start(int64_t now_ms);
  Actions OnMessage(int64_t now_ms, RepairMessage message);
  Actions OnProtocolError(int64_t now_ms, std::string_view counter, std::string_view reason);
  Actions OnPeerClosed(int64_t now_ms);
  Actions OnTick(int64_t now_ms);

  Actions OnPullReady(int64_t now_ms, uint64_t op, Result<std::vector<bool>> have);
  Actions OnCommitted(int64_t now_ms, uint64_t op, Status status);
  Actions OnApplied(int64_t now_ms, uint64_t op, Status status);
  Actions OnBlockListRead(int64_t now_ms, uint32_t req, Result<BlockListInfo> list);
  Actions OnBlocksRead(int64_t now_ms, uint32_t req,
                       Result<std::vector<std::vector<uint8_t>>> blocks);

  bool done() const;
  bool dry_run() const;  // ours or the peer's flag
  const SessionStats& stats() const;
  const std::optional<HelloMsg>& peer_hello() const;

  struct Impl;  // repair_session_impl.h

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gossync::core
