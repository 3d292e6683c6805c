// RepairService: repair sessions over mutual TLS (DESIGN.md section 4,
// agent/wire/PROTOCOL.md). It listens for peers, dials the peers the
// scheduler picks, and runs one core::RepairSession per connection.
//
// Threads: this class lives on the loop. A session, its DatasetView over the
// Replica and its RepairExecutor live on the store strand (LocalEngine::Post):
// every input of a session (a frame, a tick, the end of the stream) is one
// strand item that runs the session and its local actions inline
// (RepairExecutor::Drive) and hands back only the encoded frames to send.
// Network bytes and TLS stay on the loop.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/repair_actions.h"
#include "agent/core/scheduler.h"
#include "agent/daemon/local_engine.h"
#include "agent/daemon/tls_channel.h"
#include "agent/io/tcp.h"
#include "agent/io/timer.h"
#include "agent/store/atomic_writer.h"
#include "agent/store/repair_executor.h"
#include "agent/tls/ossl.h"
#include "gossync/config.h"

namespace gossync::daemon {

// What one finished session did, for status, logs and hooks.
struct SessionSummary {
  uint64_t id = 0;
  std::string peer;
  bool initiator = false;
  bool dry_run = false;
  bool ok = false;
  std::string error;           // the abort counter and reason when !ok
  int64_t started_ms = 0;      // wall clock
  int64_t ended_ms = 0;
  core::SessionStats stats;
  uint64_t wire_bytes_in = 0;  // TLS records
  uint64_t wire_bytes_out = 0;
  std::vector<std::string> applied_paths;  // paths changed here by this session, in order
                                           // (a path may repeat; at most 100,000)
  size_t applied_dropped = 0;              // applied paths past that bound
};

class RepairService {
 public:
  using Reply = std::function<void(Result<nlohmann::json>)>;

  // `engine` must outlive the service and be started.
  RepairService(uv_loop_t* loop, const Config& config, LocalEngine* engine);
  ~RepairService();

  // Loads the certificates (TLS 1.3 contexts) and listens on repair.listen.
  Status Start();
  // Stops accepting and dialling, ends the sessions (their temp files stay
  // for the next run), then `done`.
  void Stop(std::function<void()> done);
  // SIGHUP: bandwidth limit, max_sessions, pins.
  Status Reload(const Config& next);

  // Gossip: `peer` (reachable at `repair_addr`) advertises another root.
  void RootDiffers(const std::string& peer, const std::string& repair_addr);
  // Gossip: `peer` is dead or left.
  void Forget(const std::string& peer);
  // `gossync sync`: a session with each of `peers` now; `reply` once all
  // have ended or `timeout_ms` passed.
  void Sync(const std::vector<std::pair<std::string, std::string>>& peers, int64_t timeout_ms,
            Reply reply);
  // `gossync diff PEER`: a dry-run session; `reply` with what would move.
  void Diff(const std::string& peer, const std::string& repair_addr, int64_t timeout_ms,
            Reply reply);
  // Called after every session has ended (ok or not, dry runs too), once it
  // no longer counts in active_sessions(): hooks and metrics.
  void OnSessionEnd(std::function<void(const SessionSummary&)> fn) { on_end_ = std::move(fn); }

  nlohmann::json SessionsJson() const;
  nlohmann::json LastSyncJson() const;
  nlohmann::json CountersJson() const;
  size_t active_sessions() const { return conns_.size(); }

 private:
  struct Conn;
  struct StoreSide;
  struct NetOut;

  void Schedule();
  void Dial(const core::SessionRequest& req, bool dry_run);
  void OnAccept(std::unique_ptr<io::TcpStream> stream);
  void OnChannelReady(Conn* c, const std::string& peer);
  void OnFrame(uint64_t id, std::vector<uint8_t> body);
  // The stream ended: cleanly (OK) or with an error the session is told of.
  void OnStreamEnd(Conn* c, const Status& why);
  // A connection from `peer` arrived while our own session to it runs: ends
  // ours if the scheduler's tie-break says it gives way (true), so the
  // inbound one can start.
  bool YieldOutboundTo(const std::string& peer, uint64_t inbound_id);
  // Runs `input` on the store strand against the session, then sends.
  // `frame`: the input is a received frame (counted against the frames a
  // session may have on the strand at once).
  void RunOnStore(Conn* c, std::function<core::RepairSession::Actions(StoreSide&, int64_t)> input,
                  bool frame = false);
  // Hands received input to the strand as far as the backpressure bounds
  // allow, and holds reading from the peer while they are reached.
  void Feed(Conn* c);
  size_t QueuedOut(const Conn* c) const;
  void HandleOut(Conn* c, NetOut& out);
  void PumpSends(Conn* c);
  void End(Conn* c, bool ok, const std::string& error);
  void Tick();
  // Removes stale temp files of abandoned transfers (on the store strand).
  void CollectTempGarbage();
  Conn* NewConn(const std::string& peer, bool initiator, bool dry_run);

  uv_loop_t* loop_;
  Config config_;
  LocalEngine* engine_;
  tls::SslCtxPtr client_ctx_, server_ctx_;
  std::unique_ptr<io::TcpListener> listener_;
  std::unique_ptr<io::Timer> tick_timer_;
  std::unique_ptr<io::Timer> schedule_timer_;
  std::unique_ptr<io::Timer> bandwidth_timer_;
  std::unique_ptr<io::Timer> gc_timer_;
  core::RepairScheduler scheduler_;
  std::unique_ptr<store::TempArea> temp_;
  std::shared_ptr<store::OpenTemps> open_temps_;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  // Channels of ended sessions still sending their last frames, and since when.
  std::map<uint64_t, std::pair<std::unique_ptr<TlsChannel>, int64_t>> closing_;
  std::map<std::string, SessionSummary> last_;  // by peer
  std::map<std::string, uint64_t> aborts_;      // by counter
  std::function<void(const SessionSummary&)> on_end_;
  // Sync/diff requests waiting for sessions with these peers.
  struct Waiter;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  uint64_t next_id_ = 1;
  uint64_t sessions_ok_ = 0, sessions_failed_ = 0, refused_ = 0;
  uint64_t entries_applied_ = 0, bytes_received_ = 0, bytes_sent_ = 0, conflicts_ = 0;
  uint64_t temp_removed_ = 0;
  uint64_t wire_in_ = 0, wire_out_ = 0;  // TLS bytes of ended sessions
  // Token bucket for repair.bandwidth_limit (bytes per second, 0 = none).
  double tokens_ = 0;
  uint64_t tokens_at_ms_ = 0;
  bool stopping_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gossync::daemon
