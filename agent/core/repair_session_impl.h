// Private to repair_session*.cc: the state of one RepairSession. Split over
// repair_session.cc (handshake, descent, decisions, termination) and
// repair_transfer.cc (fetching and serving content).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "agent/core/conflict.h"
#include "agent/core/merkle_tree.h"
#include "agent/core/repair_session.h"

namespace gossync::core {

struct RepairSession::Impl {
  Impl(RepairOptions o, DatasetView* v);

  // What must happen once a conflict copy is safe: the winner is applied.
  struct Followup {
    Entry target;
    std::string source;
    std::optional<Entry> expected;
  };

  // ---- repair_session.cc ----
  // Runs one input: binds the output, calls `body`, then Post().
  template <typename F>
  Actions Run(int64_t now_ms, F&& body);
  void Post();
  bool ended() const { return phase == Phase::kDone; }
  bool Idle() const;
  void Emit(RepairAction a) { out->push_back(std::move(a)); }
  void Send(RepairMessage m);
  // Ends the session with ABORT to the peer (unless it was the peer's).
  void Fail(std::string_view counter, std::string reason, bool notify_peer = true);
  void Finish();
  void Dispatch(RepairMessage m);

  void OnHello(HelloMsg& m);
  void OnNodes(const NodesMsg& m);
  void OnLeaves(const LeavesMsg& m);
  void OnEntries(EntriesMsg& m);
  void OnWant(const WantMsg& m);
  void OnFin();
  void OnFinAck();

  void SendNodesRoot();
  // Queues every entry under (level, prefix), which the peer lacks.
  void StreamUnder(int level, uint32_t prefix);
  // Queues `e` to be sent in ENTRIES at the end of this input. `peer_lacks`:
  // the peer has no version at that path (dry run: a push). `remember`:
  // note it as sent, so that it is not sent back again.
  void QueueEntry(const Entry& e, bool peer_lacks, bool remember = true);
  void FlushEntries();

  // The decision for one remote entry; `source` is the path at which the
  // peer holds its content.
  void Decide(const Entry& remote, const std::string& source);
  // Concurrent versions: the loser's content is made safe as the conflict
  // copy first, then the winner applied.
  void Conflict(const Entry& local, const Resolution& r, const std::string& source);
  // Makes the local dataset hold `target` (content from `source` if needed).
  void Act(const Entry& target, const std::string& source, const std::optional<Entry>& expected);
  void ApplyMeta(const Entry& target, const std::optional<Entry>& expected,
                 std::optional<Followup> then = std::nullopt);
  // If an operation of this session is already making `e` (a conflict copy
  // whose entry came first), makes `then` follow it. False if none is.
  bool FollowPending(const Entry& e, Followup& then);
  void Record(std::vector<DiffItem>& list, const std::string& path,
              const std::optional<Entry>& local, const std::optional<Entry>& remote);
  void LocalError(const Status& s);

  // ---- repair_catch_up.cc ----
  // Our entry `e`, which the peer lacks: true if the rules of catch_up.h
  // dispose of it here instead of sending it (an expired tombstone is purged
  // unless we are catching up; an entry catch-up takes as deleted is deleted
  // and purged).
  bool DisposeUnsent(const Entry& e);
  // A remote entry we lack that is not taken: an expired tombstone.
  bool IgnoreRemote(const Entry& remote) const;
  void PurgeLocal(const Entry& tombstone);

  // ---- repair_transfer.cc ----
  // `alt_source`: where the peer may hold the content instead (a conflict
  // copy it made of it), asked for if `source` is not found.
  void EnqueuePull(const Entry& target, const std::string& source,
                   const std::optional<Entry>& expected,
                   std::optional<Followup> then = std::nullopt, std::string alt_source = {});
  void PumpPulls();
  void OnBlockListReq(const BlockListReqMsg& m);
  void OnBlockList(BlockListMsg& m);
  void OnBlockReq(BlockReqMsg& m);
  void OnBlock(BlockMsg& m);
  void OnReqError(const ReqErrorMsg& m);
  void PullReady(uint64_t op, Result<std::vector<bool>> have);
  void Committed(uint64_t op, const Status& s);
  void BlockListRead(uint32_t req, Result<BlockListInfo> list);
  void BlocksRead(uint32_t req, Result<std::vector<std::vector<uint8_t>>> blocks);

  struct Pull;
  void StartPull(Pull p);
  void RequestList(Pull& p);
  void RequestBlocks();
  void Commit(Pull& p);
  void FailPull(uint64_t op);
  void ReleasePull(uint64_t op);
  // Where we hold the live file (path, hash): path, or the conflict copy made
  // of it in this session. False if neither.
  bool ServePaths(const std::string& path, const Hash256& hash, std::string* read,
                  std::string* alt);
  void SendReqError(uint32_t req, const Status& s);

  // ---- state ----
  enum class Phase { kNew, kRunning, kDone };

  RepairOptions opt;
  DatasetView* view;
  int depth;
  MerkleTree shape;  // empty; for IsValidNode on the peer's node addresses
  Actions* out = nullptr;
  Phase phase = Phase::kNew;
  SessionStats stats;
  int64_t start_ms = 0;
  int64_t last_recv_ms = 0;

  std::optional<HelloMsg> peer_hello;
  Hash256 my_hello_root{};
  bool dry_run = false;
  bool nodes1_sent = false;

  // Termination (PROTOCOL.md step 7).
  bool fin_outstanding = false;  // initiator: FIN sent, FIN_ACK not yet in
  bool dirty_since_fin = false;  // initiator: sent something the peer must act on since
  bool fin_pending = false;      // responder: FIN in, FIN_ACK not yet sent
  bool acked = false;            // responder: FIN_ACK sent, nothing received since

  std::unordered_map<std::string, Hash256> sent;  // path -> digest of the version sent
  std::vector<Entry> outgoing;                    // for ENTRIES at the end of this input
  std::unordered_set<std::string> busy;           // paths with a local operation running
  std::unordered_set<std::string> diffed;         // dry run: paths classified

  // Local operations awaiting OnApplied; a conflict copy carries the apply
  // that must wait for it.
  struct LocalOp {
    LocalOp() = default;
    LocalOp(std::string p, std::optional<Followup> t, const Hash256& d)
        : path(std::move(p)), then(std::move(t)), digest(d) {}
    std::string path;
    std::optional<Followup> then;
    Hash256 digest{};                  // of the entry it applies (or copies, or purges)
    bool purge = false;                // a PurgeTombstone
    std::optional<Entry> purge_after;  // a tombstone to purge once applied (catch-up)
  };
  std::map<uint64_t, LocalOp> ops;
  uint64_t next_op = 1;

  // Content we fetch. A session may queue tens of thousands of pulls (an
  // initial sync queues every file), so what most pulls lack is boxed: an
  // unboxed Followup and expected Entry made a queued pull about 1 KiB, and
  // 20,000 of them 20 MiB of the agent's peak.
  struct Pull {
    enum class State { kQueued, kListing, kPreparing, kFetching, kCommitting };
    uint64_t op = 0;
    Entry entry;         // what is committed
    std::string source;  // where the peer holds the content; empty: entry.path
    std::string alt_source;
    bool using_alt = false;
    std::unique_ptr<Entry> expected;  // null: the path was absent
    State state = State::kQueued;
    bool large = false;  // more than one block: needs BLOCKLIST
    uint64_t blocks = 0;
    std::vector<Hash256> hashes;
    std::vector<bool> have;
    std::vector<bool> requested;
    uint64_t missing = 0;      // blocks not yet held
    uint64_t unrequested = 0;  // missing and not asked for
    uint64_t scan = 0;         // first index that may be unrequested
    size_t reqs_out = 0;       // our requests for it still unanswered
    bool failed = false;
    std::unique_ptr<Followup> then;  // once committed

    const std::string& Source() const { return source.empty() ? entry.path : source; }
  };
  std::deque<Pull> queued_small, queued_large;
  std::map<uint64_t, Pull> active;  // by op, in start order
  size_t active_large = 0;
  uint64_t active_large_blocks = 0;  // blocks of the active large pulls
  struct OutReq {
    uint64_t op = 0;
    bool list = false;
    bool alt = false;            // sent for the pull's alt_source
    std::set<uint32_t> pending;  // block indexes not yet received
  };
  std::map<uint32_t, OutReq> out_reqs;
  uint32_t next_req = 1;
  size_t in_flight = 0;         // blocks requested, not yet received
  uint64_t in_flight_bytes = 0;  // their bytes

  // Content we serve.
  struct InReq {
    bool list = false;
    std::vector<uint32_t> indexes;
    uint64_t bytes = 0;
  };
  std::map<uint32_t, InReq> in_reqs;
  size_t serving_blocks = 0;
  uint64_t serving_bytes = 0;
  size_t serving_lists = 0;
  // (path, content hash) -> the conflict copy we made of it this session.
  std::map<std::pair<std::string, Hash256>, std::string> copies;
};

}  // namespace gossync::core
