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
//      PullFile{op}          -> OnPullReady(op, one bool per block hash: held
//                               in the temp file, after copying what local
//                               files had), or an error (the pull is skipped;
//                               Unavailable: another session is fetching it)
//      WriteBlock{op}        -> nothing; a failed write fails the CommitFile
//      CommitFile{op}        -> OnCommitted(op, status); Corruption (the whole
//                               file does not match entry.hash) aborts the
//                               session as "bad_content"
//      ApplyMeta{op}         -> OnApplied(op, status)
//      MakeConflictCopy{op}  -> OnApplied(op, status)
//      AbandonPull{op}       -> nothing (close the temp file, keep its bytes)
//      PurgeTombstone{op}    -> OnApplied(op, status)
//    Serving the peer (may run in any order, e.g. on the work pool; answered
//    by req):
//      ReadBlockList{req}    -> OnBlockListRead(req, list or error)
//      ReadBlocks{req}       -> OnBlocksRead(req, one buffer per index, in
//                               order, or an error)
//    Errors become REQ_ERROR: NotFound "not_found", Aborted "changed" (the
//    file changed on disk since it was indexed), anything else "io_error".
//    PullFile need not keep the temp file open until CommitFile (a session
//    may have max_active_pulls of them running).
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
// Thread: one owner (the loop or store thread); not thread-safe. Every input,
// completions included, is given on that thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/core/catch_up.h"
#include "agent/core/dataset_view.h"
#include "agent/core/entry.h"
#include "agent/core/repair_actions.h"
#include "agent/core/repair_messages.h"
#include "gossync/status.h"

namespace gossync::core {

struct RepairOptions {
  bool initiator = false;
  std::string local_name;                   // HELLO name
  std::string peer_name;                    // the peer's certificate name; HELLO must match
  uint64_t hlc = 0;                         // our HLC, for HELLO
  bool dry_run = false;                     // `gossync diff`: move nothing, report
  std::optional<Hash256> peer_root;         // initiator: the root gossip last reported
  uint32_t block_size = kDefaultBlockSize;  // both sides must agree
  size_t max_in_flight_blocks = kMaxInFlightBlocks;
  uint64_t max_in_flight_bytes = kMaxInFlightBytes;  // block data, either way
  size_t max_active_pulls = 256;           // files being fetched at once (a temp fd each)
  size_t max_active_large_pulls = 4;       // of them, files of more than one block
  // Large pulls run together only while their block lists add up to at most
  // this many blocks (32 bytes each); one alone may be of any size.
  uint64_t max_listed_blocks = uint64_t{1} << 18;
  // Files waiting to be pulled, about 1 KiB each; past this, a file to pull
  // is left for the next session (counted as deferred), which finds it again.
  size_t max_queued_pulls = 32768;
  int64_t idle_timeout_ms = 30'000;        // without a frame from the peer
  int64_t session_timeout_ms = 3'600'000;  // in all

  // Tombstone expiry and catch-up mode (catch_up.h, docs/tombstones.md).
  // tombstone_ttl_ms 0: nothing expires, and these rules are off.
  uint64_t wall_ms = 0;  // wall clock at the start (ms since the epoch)
  uint64_t tombstone_ttl_ms = 0;
  SyncMode sync_mode = SyncMode::kCurrent;  // announced in HELLO
  NodeId node_id = 0;                       // ours, to read our counter in a VV
  uint64_t sync_counter = 0;                // SyncPoint::counter (kCatchUp)
};

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
