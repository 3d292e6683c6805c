#include "agent/daemon/repair_service.h"

#include <openssl/rand.h>

#include <algorithm>
#include <variant>

#include "agent/core/catch_up.h"
#include "agent/core/conflict.h"
#include "agent/core/repair_session.h"
#include "agent/daemon/logging.h"
#include "agent/io/clock.h"
#include "agent/store/replica_dataset.h"
#include "agent/tls/context.h"
#include "agent/wire/repair_codec.h"

namespace gossync::daemon {
namespace {

constexpr uint64_t kConnectTimeoutMs = 5'000;
constexpr uint64_t kTickMs = 1'000;
// Applied paths a session keeps for hooks; more are only counted.
constexpr size_t kMaxAppliedPaths = 100'000;
// Temp files of abandoned transfers are collected at start and then every
// ten minutes, once older than a day (or two session timeouts, if that is longer: a
// running transfer keeps touching its file, a resumable one waits a while).
constexpr uint64_t kTempGcIntervalMs = 600'000;
constexpr int64_t kTempGcMinAgeS = 24 * 3600;
// Partial transfers no pull holds open, kept for a resume: the newest this many.
constexpr size_t kMaxIdleTemps = 256;
// Backpressure per session, against a peer that asks for much and never
// reads: a received frame goes to the strand only while fewer than
// kFramesOnStrand are there and less than kMaxQueuedOut bytes of our output
// wait to be sent; the rest waits in order in the inbox, and reading from
// the peer is held while the inbox passes kMaxInbox or the output
// kMaxQueuedOut. A session's memory thus stays near kFramesOnStrand answers
// (gossync asks for 2 MiB per BLOCK_REQ; a greedy peer for up to the 8 MiB
// window, which the session refuses past) plus these bounds, instead
// of one answer per request the peer managed to send.
constexpr int kFramesOnStrand = 2;
constexpr size_t kMaxQueuedOut = 2 << 20;  // ~5 ms of loopback, tens of ms of a LAN
constexpr size_t kMaxInbox = 1 << 20;
// Connections still in the TLS handshake (they hold no session slot): past
// this many, a new one evicts the oldest, so half-open connections cost
// bounded memory and descriptors and cannot lock out real peers for long.
constexpr size_t kMaxHandshakes = 64;
// BLOCK frames handed to the strand as one item at most (group commit).
constexpr size_t kMaxBatchFrames = 256;

int64_t Wall() { return static_cast<int64_t>(io::WallMillis()); }
int64_t Mono() { return static_cast<int64_t>(io::MonotonicMillis()); }

double Jitter() {
  uint32_t v = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof(v));
  return v / 4294967296.0;
}

nlohmann::json EntryJson(const core::Entry& e) {
  return {{"path", e.path},         {"kind", core::KindName(e.kind)},
          {"size", e.size},         {"deleted", e.deleted},
          {"origin", e.origin},     {"hlc", e.hlc},
          {"vv", e.vv.ToString()}};
}

nlohmann::json DiffItemsJson(const std::vector<core::DiffItem>& items, bool remote) {
  nlohmann::json out = nlohmann::json::array();
  for (const core::DiffItem& d : items) {
    const std::optional<core::Entry>& e = remote ? d.remote : d.local;
    nlohmann::json j = e ? EntryJson(*e) : nlohmann::json{{"path", d.path}, {"deleted", true}};
    j["path"] = d.path;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

// The store-thread half of a session: created, used and destroyed only in
// strand items.
struct RepairService::StoreSide {
  std::unique_ptr<store::ReplicaDataset> dataset;
  std::unique_ptr<core::RepairSession> session;
  std::unique_ptr<store::RepairExecutor> executor;
  std::shared_ptr<const store::IgnoreMatcher> ignore;
  std::shared_ptr<store::OpenTemps> open_temps;
  // Catch-up (agent/core/catch_up.h): our mode at the start, and the sync
  // point a successful session records (the start's wall clock and counter:
  // only what was indexed before the session is surely exchanged).
  core::SyncMode mode = core::SyncMode::kNew;
  core::SyncPoint start;
};

// What a strand item hands back to the loop.
struct RepairService::NetOut {
  std::vector<std::vector<uint8_t>> frames;
  std::optional<core::repair::Abort> abort;
  std::optional<core::repair::Finished> finished;
  core::SessionStats stats;
  core::Hash256 root{};
  store::IndexCounts counts;
  uint64_t hlc = 0;
  std::vector<std::string> applied;  // paths this item changed here
  std::optional<core::SyncPoint> sync;  // recorded by this (finished) session
  core::SyncMode mode = core::SyncMode::kNew;
  std::string sync_error;
};

struct RepairService::Conn {
  uint64_t id = 0;
  std::string peer;
  bool initiator = false;
  bool dry_run = false;
  int64_t started_ms = 0;
  std::unique_ptr<TlsChannel> channel;
  std::shared_ptr<StoreSide> store;  // touched only on the strand
  bool session_started = false;
  bool ended = false;
  std::deque<std::vector<uint8_t>> outbox;  // frames waiting for bandwidth
  core::SessionStats stats;                 // latest copy, for status
  std::optional<core::Hash256> peer_root;
  std::vector<std::string> applied;  // paths changed here so far (hooks)
  size_t applied_dropped = 0;        // past kMaxAppliedPaths
  // Received, not yet on the strand, in order; a Status is the end of the stream.
  std::deque<std::variant<std::vector<uint8_t>, Status>> inbox;
  size_t inbox_bytes = 0;
  int frames_on_strand = 0;
  size_t outbox_bytes = 0;
};

struct RepairService::Waiter {
  std::vector<std::string> peers;                // still running or waiting
  nlohmann::json results = nlohmann::json::array();
  Reply reply;
  bool diff = false;
  std::unique_ptr<io::Timer> timer;
};

RepairService::RepairService(uv_loop_t* loop, const Config& config, LocalEngine* engine)
    : loop_(loop),
      config_(config),
      engine_(engine),
      scheduler_(core::SchedulerConfig{.max_sessions = config.repair.max_sessions}),
      open_temps_(std::make_shared<store::OpenTemps>()) {}

RepairService::~RepairService() { *alive_ = false; }

Status RepairService::Start() {
  tls::TlsConfig t;
  t.cert = config_.repair.cert;
  t.key = config_.repair.key;
  t.ca = config_.repair.ca;
  t.pins = config_.repair.pins;
  t.role = tls::Role::kClient;
  Result<tls::SslCtxPtr> client = tls::MakeContext(t);
  if (!client.ok()) return client.status().Prefixed("repair.cert");
  t.role = tls::Role::kServer;
  Result<tls::SslCtxPtr> server = tls::MakeContext(t);
  if (!server.ok()) return server.status().Prefixed("repair.cert");
  client_ctx_ = std::move(*client);
  server_ctx_ = std::move(*server);

  Result<store::TempArea> temp = store::TempArea::Open(*engine_->root_dir(), config_.state_dir);
  if (!temp.ok()) return temp.status().Prefixed("temp area");
  temp_ = std::make_unique<store::TempArea>(std::move(*temp));

  Result<io::SocketAddress> addr = io::SocketAddress::Parse(config_.repair.listen);
  if (!addr.ok()) return addr.status().Prefixed("repair.listen");
  Result<std::unique_ptr<io::TcpListener>> l = io::TcpListener::Listen(
      loop_, *addr, [this](std::unique_ptr<io::TcpStream> s) { OnAccept(std::move(s)); });
  if (!l.ok()) return l.status().Prefixed("repair.listen " + config_.repair.listen);
  listener_ = std::move(*l);
  tick_timer_ = io::Timer::Create(loop_);
  tick_timer_->Start(kTickMs, kTickMs, [this] { Tick(); });
  schedule_timer_ = io::Timer::Create(loop_);
  bandwidth_timer_ = io::Timer::Create(loop_);
  gc_timer_ = io::Timer::Create(loop_);
  gc_timer_->Start(0, kTempGcIntervalMs, [this] { CollectTempGarbage(); });
  Logger("repair")->info("repair_listening listen={} temp=\"{}\" max_sessions={}",
                         config_.repair.listen, temp_->path(), config_.repair.max_sessions);
  return Status::Ok();
}

void RepairService::Stop(std::function<void()> done) {
  stopping_ = true;
  listener_.reset();
  if (tick_timer_) tick_timer_->Close();
  if (schedule_timer_) schedule_timer_->Close();
  if (bandwidth_timer_) bandwidth_timer_->Close();
  if (gc_timer_) gc_timer_->Close();
  std::vector<Conn*> all;
  for (auto& [id, c] : conns_) all.push_back(c.get());
  for (Conn* c : all) End(c, false, "shutdown: agent stopping");
  closing_.clear();
  // The sessions' store halves are released by strand items queued by End;
  // LocalEngine::Stop drains the strand after this.
  if (done) done();
}

Status RepairService::Reload(const Config& next) {
  config_.repair.bandwidth_limit = next.repair.bandwidth_limit;
  config_.repair.max_sessions = next.repair.max_sessions;
  scheduler_.SetMaxSessions(next.repair.max_sessions);
  if (next.repair.pins != config_.repair.pins) {
    // Pins live in the TLS contexts: rebuild them; running sessions keep theirs.
    config_.repair.pins = next.repair.pins;
    tls::TlsConfig t{config_.repair.cert, config_.repair.key, config_.repair.ca,
                     tls::Role::kClient, config_.repair.pins};
    Result<tls::SslCtxPtr> client = tls::MakeContext(t);
    t.role = tls::Role::kServer;
    Result<tls::SslCtxPtr> server = tls::MakeContext(t);
    if (!client.ok()) return client.status();
    if (!server.ok()) return server.status();
    client_ctx_ = std::move(*client);
    server_ctx_ = std::move(*server);
  }
  Schedule();
  return Status::Ok();
}

void RepairService::CollectTempGarbage() {
  const store::TempArea* temp = temp_.get();
  std::shared_ptr<store::OpenTemps> open = open_temps_;
  int64_t max_age_s =
      std::max<int64_t>(kTempGcMinAgeS, 2 * int64_t(config_.repair.session_timeout_s));
  auto removed = std::make_shared<Result<size_t>>(size_t{0});
  // On the strand: no executor opens or renames a temp file meanwhile.
  engine_->Post(
      [temp, open, max_age_s, removed](store::Replica&) {
        *removed = temp->CollectGarbage(Wall() * 1'000'000, max_age_s * 1'000'000'000,
                                        kMaxIdleTemps,
                                        [&](const std::string& name) { return open->Contains(name); });
      },
      [this, removed, alive = alive_] {
        if (!*alive) return;
        if (!removed->ok()) {
          Logger("repair")->warn("temp_gc_failed temp=\"{}\" error=\"{}\"", temp_->path(),
                                 removed->status().message());
        } else if (**removed > 0) {
          temp_removed_ += **removed;
          Logger("repair")->info("temp_gc removed={} temp=\"{}\"", **removed, temp_->path());
        }
      });
}

void RepairService::RootDiffers(const std::string& peer, const std::string& repair_addr) {
  if (stopping_ || repair_addr.empty()) return;
  scheduler_.RootDiffers(static_cast<uint64_t>(Mono()), peer, repair_addr);
  Schedule();
}

void RepairService::Forget(const std::string& peer) { scheduler_.Forget(peer); }

void RepairService::Schedule() {
  if (stopping_) return;
  uint64_t now = static_cast<uint64_t>(Mono());
  for (const core::SessionRequest& r : scheduler_.Due(now)) Dial(r, /*dry_run=*/false);
  if (std::optional<uint64_t> next = scheduler_.NextWakeMs()) {
    schedule_timer_->Start(*next > now ? *next - now : 1, [this] { Schedule(); });
  }
}

RepairService::Conn* RepairService::NewConn(const std::string& peer, bool initiator,
                                            bool dry_run) {
  auto c = std::make_unique<Conn>();
  c->id = next_id_++;
  c->peer = peer;
  c->initiator = initiator;
  c->dry_run = dry_run;
  c->started_ms = Wall();
  Conn* raw = c.get();
  conns_[raw->id] = std::move(c);
  return raw;
}

TlsChannel::Callbacks MakeCallbacks(std::function<void(const std::string&)> ready,
                                    std::function<void(std::vector<uint8_t>)> frame,
                                    std::function<void(const Status&)> closed,
                                    std::function<void()> drain) {
  TlsChannel::Callbacks cbs;
  cbs.on_ready = std::move(ready);
  cbs.on_frame = std::move(frame);
  cbs.on_closed = std::move(closed);
  cbs.on_drain = std::move(drain);
  return cbs;
}

void RepairService::Dial(const core::SessionRequest& req, bool dry_run) {
  Conn* c = NewConn(req.peer, /*initiator=*/true, dry_run);
  uint64_t id = c->id;
  Result<io::SocketAddress> addr = io::SocketAddress::Parse(req.repair_addr);
  if (!addr.ok()) {
    End(c, false, "bad_address: " + addr.status().message());
    return;
  }
  Logger("repair")->debug("session={} dial peer={} addr={} dry_run={}", id, req.peer,
                          req.repair_addr, dry_run);
  c->channel = TlsChannel::Connect(
      loop_, *addr, client_ctx_.get(), req.peer, kConnectTimeoutMs, config_.repair.max_frame_bytes,
      MakeCallbacks(
          [this, id](const std::string& peer) {
            if (conns_.count(id)) OnChannelReady(conns_[id].get(), peer);
          },
          [this, id](std::vector<uint8_t> body) { OnFrame(id, std::move(body)); },
          [this, id](const Status& why) {
            if (!conns_.count(id)) return (void)closing_.erase(id);
            Conn* conn = conns_[id].get();
            if (conn->ended) return;  // from within End (Finish): it finishes the job
            if (!conn->session_started) return End(conn, false, "connect: " + why.message());
            OnStreamEnd(conn, why);
          },
          [this, id] {
            auto it = conns_.find(id);
            if (it == conns_.end()) return;
            PumpSends(it->second.get());
            Feed(it->second.get());
          }));
}

void RepairService::OnAccept(std::unique_ptr<io::TcpStream> stream) {
  if (stopping_) return;
  // The peer is known only after the handshake; until then the connection
  // holds no slot, and the handshake has the idle tick's deadline.
  Conn* oldest = nullptr;
  size_t handshakes = 0;
  for (auto& [id, conn] : conns_) {
    if (conn->initiator || conn->session_started || conn->ended) continue;
    ++handshakes;
    if (!oldest) oldest = conn.get();  // ids grow: the first is the oldest
  }
  if (handshakes >= kMaxHandshakes && oldest) {
    ++aborts_["handshake_evicted"];
    End(oldest, false, "handshake_evicted: more than " + std::to_string(kMaxHandshakes) +
                           " connections in the TLS handshake");
  }
  Conn* c = NewConn("", /*initiator=*/false, /*dry_run=*/false);
  uint64_t id = c->id;
  c->channel = TlsChannel::Accept(
      std::move(stream), server_ctx_.get(), config_.repair.max_frame_bytes,
      MakeCallbacks(
          [this, id](const std::string& peer) {
            if (!conns_.count(id)) return;
            Conn* conn = conns_[id].get();
            conn->peer = peer;
            const uint64_t now = static_cast<uint64_t>(Mono());
            if (!scheduler_.InboundStarted(now, peer) &&
                !(YieldOutboundTo(peer, id) && scheduler_.InboundStarted(now, peer))) {
              ++refused_;
              Logger("repair")->info("session={} refused peer={} reason=busy", id, peer);
              conn->channel->Close();
              conns_.erase(id);
              return;
            }
            OnChannelReady(conn, peer);
          },
          [this, id](std::vector<uint8_t> body) { OnFrame(id, std::move(body)); },
          [this, id](const Status& why) {
            if (!conns_.count(id)) return (void)closing_.erase(id);
            Conn* conn = conns_[id].get();
            if (conn->ended) return;  // from within End (Finish): it finishes the job
            if (!conn->session_started) {
              ++refused_;
              Logger("repair")->warn("session={} handshake_failed from={} error=\"{}\"", id,
                                     conn->channel ? conn->channel->remote_address() : "-",
                                     why.message());
              ++aborts_["handshake"];
              conns_.erase(id);
              return;
            }
            OnStreamEnd(conn, why);
          },
          [this, id] {
            auto it = conns_.find(id);
            if (it == conns_.end()) return;
            PumpSends(it->second.get());
            Feed(it->second.get());
          }));
}

void RepairService::OnFrame(uint64_t id, std::vector<uint8_t> body) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn* c = it->second.get();
  c->inbox_bytes += body.size();
  c->inbox.push_back(std::move(body));
  Feed(c);
}

void RepairService::OnStreamEnd(Conn* c, const Status& why) {
  c->inbox.push_back(why);  // after the frames still waiting
  Feed(c);
}

size_t RepairService::QueuedOut(const Conn* c) const {
  return c->outbox_bytes + (c->channel ? c->channel->queued_bytes() : 0);
}

void RepairService::Feed(Conn* c) {
  while (!c->ended && !c->inbox.empty() && c->frames_on_strand < kFramesOnStrand &&
         QueuedOut(c) < kMaxQueuedOut) {
    auto input = std::move(c->inbox.front());
    c->inbox.pop_front();
    if (auto* end = std::get_if<Status>(&input)) {
      RunOnStore(c, [why = *end](StoreSide& s, int64_t now) {
        if (why.ok()) return s.session->OnPeerClosed(now);
        std::string counter = why.message().rfind("truncated", 0) == 0 ? "truncated"
                              : why.code() == Code::kLimitExceeded   ? "frame_too_large"
                                                                      : "connection";
        return s.session->OnProtocolError(now, counter, why.message());
      });
      continue;
    }
    // Decoding is cheap and needs no store: done here, on the loop. A run of
    // BLOCK frames that arrived while the strand was busy goes as one item,
    // whose file commits share their fsyncs (the executor's deferred
    // commits): group commit, sized by the disk's pace. The run ends after
    // its first other message, so what a batch sends back stays small.
    auto batch = std::make_shared<std::vector<Result<core::RepairMessage>>>();
    for (;;) {
      std::vector<uint8_t>& body = std::get<std::vector<uint8_t>>(input);
      c->inbox_bytes -= body.size();
      batch->push_back(wire::DecodeMessage(body, config_.repair.max_frame_bytes));
      const bool block = batch->back().ok() && std::holds_alternative<core::BlockMsg>(batch->back().value());
      if (!block || batch->size() >= kMaxBatchFrames || c->inbox.empty() ||
          !std::holds_alternative<std::vector<uint8_t>>(c->inbox.front())) {
        break;
      }
      input = std::move(c->inbox.front());
      c->inbox.pop_front();
    }
    RunOnStore(
        c,
        [batch](StoreSide& s, int64_t now) {
          core::RepairSession::Actions net;
          for (size_t i = 0; i < batch->size(); ++i) {
            Result<core::RepairMessage>& m = (*batch)[i];
            core::RepairSession::Actions in =
                m.ok() ? s.session->OnMessage(now, std::move(m.value()))
                       : s.session->OnProtocolError(now, wire::DecodeErrorCounter(m.status()),
                                                    m.status().message());
            const bool more = i + 1 < batch->size();
            bool end = false;
            for (core::RepairAction& a : s.executor->Drive(*s.session, std::move(in), now, more)) {
              end |= !std::holds_alternative<core::repair::Send>(a);
              net.push_back(std::move(a));
            }
            if (end || s.session->done()) break;
          }
          return net;
        },
        /*frame=*/true);
  }
  if (c->channel && !c->ended) {
    c->channel->HoldReading(c->inbox_bytes > kMaxInbox || QueuedOut(c) >= kMaxQueuedOut);
  }
}

bool RepairService::YieldOutboundTo(const std::string& peer, uint64_t inbound_id) {
  Conn* out = nullptr;
  for (auto& [cid, conn] : conns_) {
    if (conn->initiator && !conn->dry_run && !conn->ended && conn->peer == peer) out = conn.get();
  }
  if (out == nullptr || !scheduler_.YieldToInbound(config_.node, peer)) return false;
  Logger("repair")->info("session={} yields peer={} to_session={} reason=both_dialed", out->id,
                         peer, inbound_id);
  End(out, false, "yielded: the peer's session replaces ours (both dialed at once)");
  return true;
}

void RepairService::OnChannelReady(Conn* c, const std::string& peer) {
  c->session_started = true;
  Logger("repair")->info("session={} started peer={} role={} dry_run={}", c->id, peer,
                         c->initiator ? "initiator" : "responder", c->dry_run);
  core::RepairOptions opts;
  opts.initiator = c->initiator;
  opts.local_name = config_.node;
  opts.peer_name = peer;
  opts.dry_run = c->dry_run;
  opts.peer_root = c->peer_root;
  opts.idle_timeout_ms = int64_t(config_.repair.idle_timeout_s) * 1000;
  opts.session_timeout_ms = int64_t(config_.repair.session_timeout_s) * 1000;
  opts.tombstone_ttl_ms = config_.tombstone_ttl_s * 1000;
  auto side = std::make_shared<StoreSide>();
  side->ignore = engine_->ignore();
  side->open_temps = open_temps_;
  c->store = side;
  const store::RootDir* root = engine_->root_dir();
  const store::TempArea* temp = temp_.get();
  // The store half needs the Replica, which only the strand may touch; the
  // strand runs this before the Start below (FIFO).
  engine_->Post(
      [side, opts, root, temp](store::Replica& r) mutable {
        opts.hlc = r.hlc();
        // Tombstone expiry and catch-up mode are decided as of now.
        opts.wall_ms = r.WallNow();
        opts.node_id = r.node_id();
        opts.sync_counter = r.sync_point().counter;
        opts.sync_mode = core::ModeAt(r.sync_point(), opts.wall_ms, opts.tombstone_ttl_ms);
        side->mode = opts.sync_mode;
        side->start = core::SyncPoint{opts.wall_ms, r.counter()};
        side->dataset = std::make_unique<store::ReplicaDataset>(&r);
        side->session = std::make_unique<core::RepairSession>(opts, side->dataset.get());
        store::RepairContext ctx{&r, root, temp, side->ignore.get(), side->open_temps.get()};
        side->executor = std::make_unique<store::RepairExecutor>(ctx);
      },
      nullptr);
  RunOnStore(c, [](StoreSide& s, int64_t now) { return s.session->Start(now); });
}

void RepairService::RunOnStore(
    Conn* c, std::function<core::RepairSession::Actions(StoreSide&, int64_t)> input, bool frame) {
  if (c->ended || !c->store) return;
  uint64_t id = c->id;
  if (frame) ++c->frames_on_strand;
  auto side = c->store;
  auto out = std::make_shared<NetOut>();
  engine_->Post(
      [side, input = std::move(input), out](store::Replica& r) {
        if (!side->session) return;  // not built (shutdown) or already released
        int64_t now = Mono();
        core::RepairSession::Actions net =
            side->executor->Drive(*side->session, input(*side, now), now);
        for (core::RepairAction& a : net) {
          if (auto* send = std::get_if<core::repair::Send>(&a)) {
            out->frames.push_back(wire::EncodeMessage(send->message));
          } else if (auto* ab = std::get_if<core::repair::Abort>(&a)) {
            out->abort = std::move(*ab);
          } else if (auto* fin = std::get_if<core::repair::Finished>(&a)) {
            out->finished = std::move(*fin);
          }
        }
        out->stats = side->session->stats();
        out->applied = side->executor->TakeAppliedPaths();
        out->mode = side->mode;
        const auto& hello = side->session->peer_hello();
        if (out->finished && !side->session->dry_run() && hello &&
            core::SessionIsSyncPoint(side->mode, hello->flags)) {
          Status s = r.RecordSync(side->start);
          if (s.ok()) {
            out->sync = r.sync_point();
          } else {
            out->sync_error = s.message();
          }
        }
        out->root = r.root();
        out->counts = r.counts();
        out->hlc = r.hlc();
        if (out->abort || out->finished) {
          // The session is over: release its store half here, on the strand.
          side->executor.reset();
          side->session.reset();
          side->dataset.reset();
        }
      },
      [this, id, out, frame] {
        engine_->Publish(out->root, out->counts, out->hlc);
        if (out->sync) engine_->PublishSync(*out->sync);
        if (!out->sync_error.empty()) {
          Logger("repair")->warn("session={} sync_point_failed error=\"{}\"", id, out->sync_error);
        }
        if (out->sync && out->mode == core::SyncMode::kCatchUp) {
          Logger("repair")->info("session={} catch_up_done taken_as_deleted={}", id,
                                 out->stats.taken_as_deleted);
        }
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        if (frame) --it->second->frames_on_strand;
        HandleOut(it->second.get(), *out);
        it = conns_.find(id);  // HandleOut may have ended it
        if (it != conns_.end()) Feed(it->second.get());
      });
}

void RepairService::HandleOut(Conn* c, NetOut& out) {
  c->stats = out.stats;
  for (std::string& p : out.applied) {
    if (c->applied.size() < kMaxAppliedPaths) {
      c->applied.push_back(std::move(p));
    } else {
      ++c->applied_dropped;
    }
  }
  for (auto& f : out.frames) {
    c->outbox_bytes += f.size();
    c->outbox.push_back(std::move(f));
  }
  PumpSends(c);
  if (out.abort) {
    ++aborts_[out.abort->counter];
    Logger("repair")->warn("session={} aborted peer={} counter={} reason=\"{}\"", c->id, c->peer,
                           out.abort->counter, out.abort->reason);
    c->stats = out.abort->stats;
    End(c, false, out.abort->counter + ": " + out.abort->reason);
  } else if (out.finished) {
    c->stats = out.finished->stats;
    End(c, true, "");
  }
}

void RepairService::PumpSends(Conn* c) {
  if (!c->channel) return;
  uint64_t limit = config_.repair.bandwidth_limit;
  while (!c->outbox.empty()) {
    std::vector<uint8_t>& f = c->outbox.front();
    if (limit > 0) {
      // Token bucket shared by all sessions; a burst of up to one second.
      uint64_t now = static_cast<uint64_t>(Mono());
      tokens_ = std::min<double>(double(limit),
                                 tokens_ + double(now - tokens_at_ms_) * double(limit) / 1000.0);
      tokens_at_ms_ = now;
      if (tokens_ < double(std::min<uint64_t>(f.size(), limit))) {
        uint64_t wait = uint64_t((double(f.size()) - tokens_) * 1000.0 / double(limit)) + 1;
        if (!bandwidth_timer_->active()) {
          bandwidth_timer_->Start(wait, [this] {
            for (auto& [id, conn] : conns_) {
              PumpSends(conn.get());
              Feed(conn.get());
            }
          });
        }
        return;
      }
      tokens_ -= double(f.size());
    }
    if (!c->channel->Send(f).ok()) {
      c->outbox.clear();
      c->outbox_bytes = 0;
      return;
    }
    c->outbox_bytes -= f.size();
    c->outbox.pop_front();
  }
}

void RepairService::End(Conn* c, bool ok, const std::string& error) {
  if (c->ended) return;
  c->ended = true;
  uint64_t id = c->id;
  SessionSummary s;
  s.id = id;
  s.peer = c->peer;
  s.initiator = c->initiator;
  s.dry_run = c->dry_run;
  s.ok = ok;
  s.error = error;
  s.started_ms = c->started_ms;
  s.ended_ms = Wall();
  s.stats = c->stats;
  s.applied_paths = std::move(c->applied);
  s.applied_dropped = c->applied_dropped;
  if (c->channel) {
    s.wire_bytes_in = c->channel->bytes_in();
    s.wire_bytes_out = c->channel->bytes_out();
    // Let queued frames (FIN_ACK, ABORT) go out, then close.
    c->channel->Finish();
  }
  entries_applied_ += s.stats.entries_applied;
  bytes_received_ += s.stats.content_bytes_received;
  bytes_sent_ += s.stats.content_bytes_sent;
  wire_in_ += s.wire_bytes_in;
  wire_out_ += s.wire_bytes_out;
  conflicts_ += s.stats.conflicts;
  (ok ? sessions_ok_ : sessions_failed_)++;
  auto log = Logger("repair");
  if (ok) {
    log->info(
        "session={} done peer={} role={} dry_run={} entries_in={} entries_out={} applied={} "
        "conflicts={} blocks_in={} blocks_reused={} bytes_in={} bytes_out={} wire_in={} "
        "wire_out={} levels={} purged={} taken_as_deleted={} stale_ignored={} skipped={} ms={}",
        id, c->peer, c->initiator ? "initiator" : "responder", c->dry_run, s.stats.entries_received,
        s.stats.entries_sent, s.stats.entries_applied, s.stats.conflicts,
        s.stats.blocks_received, s.stats.blocks_reused, s.stats.content_bytes_received,
        s.stats.content_bytes_sent, s.wire_bytes_in, s.wire_bytes_out, s.stats.descent_levels,
        s.stats.tombstones_purged, s.stats.taken_as_deleted, s.stats.stale_ignored,
        s.stats.skipped, s.ended_ms - s.started_ms);
  } else {
    log->info("session={} failed peer={} role={} dry_run={} error=\"{}\" applied={} blocks_in={} "
              "bytes_in={} ms={}",
              id, c->peer.empty() ? "-" : c->peer, c->initiator ? "initiator" : "responder",
              c->dry_run, error, s.stats.entries_applied, s.stats.blocks_received,
              s.stats.content_bytes_received, s.ended_ms - s.started_ms);
  }
  if (!s.stats.last_local_error.empty()) {
    // Paths skipped for a local reason (a full disk, permissions): they wait
    // for the next session, and the operator needs to know why.
    log->warn("session={} local_errors peer={} skipped={} last_error=\"{}\"", id, c->peer,
              s.stats.skipped, s.stats.last_local_error);
  }
  if (!c->peer.empty() && !c->dry_run) {
    scheduler_.Ended(static_cast<uint64_t>(Mono()), c->peer, ok, Jitter());
    if (ok) {
      last_[c->peer] = s;
      last_[c->peer].applied_paths = {};  // status needs the numbers only
    }
  }
  // Release the store half on the strand if the session did not end there.
  if (auto side = c->store) {
    engine_->Post(
        [side](store::Replica&) {
          if (side->executor) side->executor->EndSession(false);
          side->executor.reset();
          side->session.reset();
          side->dataset.reset();
        },
        nullptr);
  }
  // Answer the sync/diff requests waiting on this peer.
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    Waiter& w = **it;
    auto p = std::find(w.peers.begin(), w.peers.end(), c->peer);
    if (p == w.peers.end() || w.diff != c->dry_run) {
      ++it;
      continue;
    }
    w.peers.erase(p);
    if (w.diff) {
      nlohmann::json j = {{"peer", c->peer}};
      if (!ok) {
        w.reply(Status::Unavailable("diff with " + c->peer + " failed: " + error));
      } else {
        j["pull"] = DiffItemsJson(s.stats.diff.pull, true);
        j["push"] = DiffItemsJson(s.stats.diff.push, false);
        j["conflict"] = DiffItemsJson(s.stats.diff.conflict, true);
        j["merge"] = DiffItemsJson(s.stats.diff.merge, true);
        w.reply(j);
      }
      w.timer.reset();
      it = waiters_.erase(it);
      continue;
    }
    w.results.push_back({{"peer", c->peer},
                         {"ok", ok},
                         {"entries_applied", s.stats.entries_applied},
                         {"bytes_received", s.stats.content_bytes_received},
                         {"conflicts", s.stats.conflicts},
                         {"error", error}});
    if (w.peers.empty()) {
      w.reply(nlohmann::json{{"results", w.results}});
      w.timer.reset();
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  // The channel finishes in the background (its on_closed drops it from
  // closing_, or Tick does after a while); the Conn goes now.
  if (c->channel) closing_[id] = {std::move(c->channel), Mono()};
  conns_.erase(id);
  if (on_end_) on_end_(s);
  Schedule();
}

void RepairService::Tick() {
  // Channels that could not finish politely (a peer that stopped reading).
  for (auto it = closing_.begin(); it != closing_.end();) {
    if (Mono() - it->second.second > int64_t(config_.repair.idle_timeout_s) * 1000) {
      it = closing_.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns_) ids.push_back(id);
  int64_t now_wall = Wall();
  for (uint64_t id : ids) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Conn* c = it->second.get();
    if (!c->session_started) {
      // A handshake that takes longer than the idle timeout is dropped.
      if (now_wall - c->started_ms > int64_t(config_.repair.idle_timeout_s) * 1000) {
        ++aborts_["handshake_timeout"];
        End(c, false, "handshake_timeout");
      }
      continue;
    }
    RunOnStore(c, [](StoreSide& s, int64_t now) { return s.session->OnTick(now); });
  }
}

void RepairService::Sync(const std::vector<std::pair<std::string, std::string>>& peers,
                         int64_t timeout_ms, Reply reply) {
  if (peers.empty()) {
    reply(nlohmann::json{{"results", nlohmann::json::array()}});
    return;
  }
  auto w = std::make_shared<Waiter>();
  w->reply = std::move(reply);
  for (const auto& [peer, addr] : peers) {
    w->peers.push_back(peer);
    scheduler_.Manual(static_cast<uint64_t>(Mono()), peer, addr);
  }
  w->timer = io::Timer::Create(loop_);
  std::weak_ptr<Waiter> weak = w;
  w->timer->Start(static_cast<uint64_t>(std::max<int64_t>(timeout_ms, 1)), [this, weak] {
    auto w2 = weak.lock();
    if (!w2) return;
    for (const std::string& p : w2->peers) {
      w2->results.push_back({{"peer", p}, {"ok", false}, {"error", "timed out"}});
    }
    w2->reply(nlohmann::json{{"results", w2->results}});
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w2), waiters_.end());
  });
  waiters_.push_back(w);
  Schedule();
}

void RepairService::Diff(const std::string& peer, const std::string& repair_addr,
                         int64_t timeout_ms, Reply reply) {
  auto w = std::make_shared<Waiter>();
  w->reply = std::move(reply);
  w->diff = true;
  w->peers.push_back(peer);
  w->timer = io::Timer::Create(loop_);
  std::weak_ptr<Waiter> weak = w;
  w->timer->Start(static_cast<uint64_t>(std::max<int64_t>(timeout_ms, 1)), [this, weak] {
    auto w2 = weak.lock();
    if (!w2) return;
    w2->reply(Status::Aborted("diff timed out"));
    waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w2), waiters_.end());
  });
  waiters_.push_back(w);
  Dial(core::SessionRequest{peer, repair_addr, true}, /*dry_run=*/true);
}

nlohmann::json RepairService::SessionsJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [id, c] : conns_) {
    const core::SessionStats& s = c->stats;
    out.push_back({{"id", id},
                   {"peer", c->peer},
                   {"role", c->initiator ? "initiator" : "responder"},
                   {"state", c->session_started ? "running" : "connecting"},
                   {"dry_run", c->dry_run},
                   {"started_ms", c->started_ms},
                   {"entries_sent", s.entries_sent},
                   {"entries_received", s.entries_received},
                   {"entries_applied", s.entries_applied},
                   {"bytes_sent", s.content_bytes_sent},
                   {"bytes_received", s.content_bytes_received},
                   {"wire_bytes_in", c->channel ? c->channel->bytes_in() : 0},
                   {"wire_bytes_out", c->channel ? c->channel->bytes_out() : 0}});
  }
  return out;
}

nlohmann::json RepairService::LastSyncJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [peer, s] : last_) {
    out.push_back({{"peer", peer},
                   {"time_ms", s.ended_ms},
                   {"duration_ms", s.ended_ms - s.started_ms},
                   {"entries_applied", s.stats.entries_applied},
                   {"bytes_received", s.stats.content_bytes_received},
                   {"bytes_sent", s.stats.content_bytes_sent},
                   {"conflicts", s.stats.conflicts}});
  }
  return out;
}

nlohmann::json RepairService::CountersJson() const {
  nlohmann::json aborts = nlohmann::json::object();
  for (const auto& [k, v] : aborts_) aborts[k] = v;
  return {{"sessions_ok", sessions_ok_},         {"sessions_failed", sessions_failed_},
          {"sessions_active", conns_.size()},    {"refused", refused_},
          {"entries_applied", entries_applied_}, {"bytes_received", bytes_received_},
          {"bytes_sent", bytes_sent_},           {"conflicts", conflicts_},
          {"temp_files_removed", temp_removed_}, {"wire_bytes_in", wire_in_},
          {"wire_bytes_out", wire_out_},         {"aborts", aborts}};
}

}  // namespace gossync::daemon
