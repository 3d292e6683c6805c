#include "agent/daemon/agent.h"

#include <signal.h>

#include "agent/core/conflict.h"
#include "agent/core/hash.h"
#include "agent/daemon/check.h"
#include "agent/daemon/logging.h"
#include "agent/daemon/sync_keeper.h"
#include "agent/io/clock.h"
#include "gossync/version.h"

namespace gossync::daemon {
namespace {

// While the first scan runs, the start timeout (TimeoutStartSec=) is pushed
// kStartExtendMs ahead every kStartExtendEveryMs, so a large first scan does
// not need TimeoutStartSec=infinity.
constexpr uint64_t kStartExtendMs = 60'000;
constexpr int64_t kStartExtendEveryMs = 10'000;

}  // namespace

Agent::Agent(io::Loop* loop, Config config, std::string config_path)
    : loop_(loop), config_(std::move(config)), config_path_(std::move(config_path)) {}

Agent::~Agent() = default;

Status Agent::Start() {
  started_ms_ = io::WallMillis();
  auto log = Logger("agent");
  log->info("starting version={} node={} data_dir=\"{}\" state_dir=\"{}\"", kVersion,
            config_.node, config_.data_dir, config_.state_dir);

  engine_ = std::make_unique<LocalEngine>(loop_->get(), config_,
                                          [this](const core::Hash256&) { OnRootChanged(); });
  admin_ = std::make_unique<AdminServer>(loop_->get());
  InstallAdminHandlers();
  GOSSYNC_RETURN_IF_ERROR(admin_->Listen(config_.admin_socket));
  notifier_.ExtendTimeout(kStartExtendMs);
  extended_ms_ = io::MonotonicMillis();

  HookRunner::Options hook_opts;
  hook_opts.cwd = config_.data_dir;
  hook_opts.repair_busy = [this] { return repair_ && repair_->active_sessions() > 0; };
  hooks_ = std::make_unique<HookRunner>(loop_->get(), std::move(hook_opts));
  GOSSYNC_RETURN_IF_ERROR(hooks_->Configure(config_.hooks));
  if (!config_.metrics_listen.empty()) {
    // Metrics are not worth stopping sync for: a taken port is logged.
    metrics_server_ =
        std::make_unique<MetricsServer>(loop_->get(), [this] { return MetricsText(); });
    if (Status s = metrics_server_->Listen(config_.metrics_listen); !s.ok()) {
      log->error("metrics_failed error=\"{}\"", s.message());
      metrics_server_.reset();
    }
  }

  auto on_signal = [this](int signum) {
    Shutdown(signum == SIGTERM ? "SIGTERM" : "SIGINT", 0);
  };
  auto term = io::SignalHandler::Create(loop_->get(), SIGTERM, on_signal);
  auto intr = io::SignalHandler::Create(loop_->get(), SIGINT, on_signal);
  auto hup = io::SignalHandler::Create(loop_->get(), SIGHUP, [this](int) { Reload(); });
  if (!term.ok()) return term.status();
  if (!intr.ok()) return intr.status();
  if (!hup.ok()) return hup.status();
  sigterm_ = std::move(*term);
  sigint_ = std::move(*intr);
  sighup_ = std::move(*hup);

  watchdog_timer_ = io::Timer::Create(loop_->get());
  if (uint64_t every = notifier_.watchdog_interval_ms(); every > 0) {
    watchdog_timer_->Start(0, every, [this] { notifier_.Watchdog(); });
  }
  status_timer_ = io::Timer::Create(loop_->get());
  status_timer_->Start(5000, 5000, [this] { UpdateSystemdStatus(); });
  observe_timer_ = io::Timer::Create(loop_->get());
  observe_timer_->Start(1000, 1000, [this] {
    ObserveForMetrics();
    if (!ready_ && io::MonotonicMillis() - extended_ms_ >= kStartExtendEveryMs) {
      notifier_.ExtendTimeout(kStartExtendMs);
      extended_ms_ = io::MonotonicMillis();
    }
  });

  engine_->Start([this, log](const Status& s) {
    if (!s.ok()) {
      log->critical("start_failed error=\"{}\"", s.message());
      Shutdown("fatal error", 1);
      return;
    }
    OnReady();
  });
  return Status::Ok();
}

void Agent::OnSessionEnd(const SessionSummary& s) {
  if (!s.dry_run && !s.peer.empty()) {
    metrics_.repair[s.ok ? "ok" : "failed"].Add(double(s.ended_ms - s.started_ms) / 1000.0);
  }
  if (s.applied_dropped > 0) {
    Logger("repair")->warn("session={} applied_paths_dropped={} (hooks see the first {})", s.id,
                           s.applied_dropped, s.applied_paths.size());
  }
  if (!s.dry_run && !s.applied_paths.empty()) hooks_->Applied(s.id, s.applied_paths);
  hooks_->Poke();
}

void Agent::ObserveForMetrics() {
  if (!engine_) return;
  const LocalState& st = engine_->state();
  if (gossip_) agreement_.Observe(io::WallMillis(), st.root, gossip_->membership().Members());
  if (st.full_scans > scans_seen_) {
    metrics_.scan.Add(double(st.last_scan_duration_ms) / 1000.0);
    scans_seen_ = st.full_scans;
  }
}

std::string Agent::MetricsText() {
  ObserveForMetrics();
  metrics_.agreement = &agreement_;
  return RenderMetrics(StatusJson(), metrics_, io::WallMillis());
}

void Agent::OnReady() {
  auto log = Logger("agent");
  repair_ = std::make_unique<RepairService>(loop_->get(), config_, engine_.get());
  repair_->OnSessionEnd([this](const SessionSummary& s) { OnSessionEnd(s); });
  if (Status s = repair_->Start(); !s.ok()) {
    log->critical("start_failed error=\"{}\"", s.message());
    Shutdown("fatal error", 1);
    return;
  }
  GossipDriver::Callbacks gcb;
  gcb.on_root_differs = [this](const core::RootDiffers& r) {
    repair_->RootDiffers(r.member, r.repair_addr);
  };
  gcb.on_member_event = [this](const core::MemberEvent& e) {
    if (!e.to || *e.to == core::MemberState::kDead || *e.to == core::MemberState::kLeft) {
      repair_->Forget(e.name);
    }
  };
  gossip_ = std::make_unique<GossipDriver>(loop_->get(), config_, std::move(gcb));
  std::string repair_addr = AdvertisedAddress(config_.repair.listen, config_.repair.advertise);
  if (Status s = gossip_->Start(repair_addr); !s.ok()) {
    log->critical("start_failed error=\"{}\"", s.message());
    Shutdown("fatal error", 1);
    return;
  }
  OnRootChanged();
  // Catch-up bookkeeping (sync_keeper.h).
  const uint64_t keep_every = KeepSyncIntervalMs(config_.tombstone_ttl_s * 1000);
  sync_timer_ = io::Timer::Create(loop_->get());
  sync_timer_->Start(keep_every, keep_every, [this] {
    if (gossip_ && repair_) KeepSync(*gossip_, engine_.get(), repair_.get(), &sync_round_);
  });
  ready_ = true;
  const LocalState& st = engine_->state();
  log->info("ready root={} entries={} scan_ms={}", core::ToHex(st.root), st.counts.live(),
            st.last_scan_duration_ms);
  notifier_.Ready();
  UpdateSystemdStatus();
}

void Agent::OnRootChanged() {
  ObserveForMetrics();
  const LocalState& st = engine_->state();
  if (gossip_) gossip_->SetLocalState(st.root, st.counts.total(), st.hlc);
  UpdateSystemdStatus();
}

bool Agent::Converged() const { return !gossip_ || gossip_->Converged(engine_->state().root); }

void Agent::Shutdown(const std::string& why, int exit_code) {
  if (shutting_down_) return;
  shutting_down_ = true;
  exit_code_ = exit_code;
  Logger("agent")->info("stopping reason=\"{}\"", why);
  notifier_.Stopping();
  admin_->Close();
  if (metrics_server_) metrics_server_->Close();
  hooks_->Stop();
  watchdog_timer_->Close();
  status_timer_->Close();
  observe_timer_->Close();
  if (sync_timer_) sync_timer_->Close();
  sighup_->Close();
  // The second SIGTERM/SIGINT is ignored while we drain; systemd escalates
  // to SIGKILL after TimeoutStopSec if draining hangs.
  auto stop_engine = [this] {
    engine_->Stop([this] {
      Logger("agent")->info("stopped");
      sigterm_->Close();
      sigint_->Close();
      engine_.reset();
    });
  };
  auto leave = [this, stop_engine] {
    if (!gossip_) return stop_engine();
    gossip_->Leave([this, stop_engine] {
      gossip_.reset();
      stop_engine();
    });
  };
  if (repair_) {
    repair_->Stop([this, leave] {
      leave();
    });
  } else {
    leave();
  }
}

void Agent::Reload() {
  auto log = Logger("agent");
  notifier_.Reloading();
  ConfigLoad load = CheckConfig(config_path_);
  if (!load.ok()) {
    for (const auto& e : load.errors) log->error("reload_refused problem=\"{}\"", e);
    log->error("reload_refused: the running configuration stays in force");
    notifier_.ReloadDone();
    return;
  }
  const Config& next = load.config;
  if (next.node != config_.node || next.data_dir != config_.data_dir ||
      next.state_dir != config_.state_dir || next.tree_depth != config_.tree_depth) {
    log->warn("reload: node, data_dir, state_dir and tree_depth take effect only on restart");
  }
  // LoadConfig checked every value, so nothing below can fail half-way.
  if (Status s = SetLogLevel(next.log_level); !s.ok()) log->error("reload {}", s.message());
  if (gossip_) {
    if (Status s = gossip_->Reload(next); !s.ok()) log->error("reload {}", s.message());
  }
  if (repair_) {
    if (Status s = repair_->Reload(next); !s.ok()) log->error("reload {}", s.message());
  }
  if (next.metrics_listen != config_.metrics_listen) {
    log->warn("reload: metrics_listen takes effect only on restart");
  }
  if (Status s = hooks_->Configure(next.hooks); !s.ok()) {
    log->error("reload {}", s.message());
  } else {
    config_.hooks = next.hooks;
  }
  if (next.ignore != config_.ignore) {
    if (Status s = engine_->SetIgnore(next.ignore); !s.ok()) log->error("reload {}", s.message());
    engine_->Rescan("ignore patterns changed");
  }
  config_.log_level = next.log_level;
  config_.ignore = next.ignore;
  log->info("reloaded config=\"{}\" hooks={}", config_path_, hooks_->size());
  notifier_.ReloadDone();
}

void Agent::UpdateSystemdStatus() {
  if (!engine_) return;
  const LocalState& s = engine_->state();
  if (!ready_) {
    notifier_.Status("starting: first scan, " + std::to_string(s.hashed_files) + " files hashed, " +
                     std::to_string(s.counts.live()) + " entries");
    return;
  }
  // "members 3/3 alive, root 3f1c2ab4c9d0, 1204 entries, 0 sessions, converged"
  size_t alive = 1, total = 1;  // ourselves
  if (gossip_) {
    for (const core::MemberView& m : gossip_->membership().Members()) {
      ++total;
      if (m.state == core::MemberState::kAlive) ++alive;
    }
  }
  size_t sessions = repair_ ? repair_->active_sessions() : 0;
  notifier_.Status(
      "members " + std::to_string(alive) + "/" + std::to_string(total) + " alive, root " +
      core::ToHex(s.root).substr(0, 12) + ", " + std::to_string(s.counts.live()) + " entries, " +
      std::to_string(sessions) + (sessions == 1 ? " session, " : " sessions, ") +
      (Converged() ? "converged" : "syncing") + (s.scan_state == "scanning" ? ", scanning" : ""));
}

nlohmann::json Agent::StatusJson() const {
  const LocalState& s = engine_->state();
  char id[17];
  std::snprintf(id, sizeof(id), "%016llx", static_cast<unsigned long long>(s.node_id));
  nlohmann::json j = {
      {"node", config_.node},
      {"node_id", id},
      {"version", kVersion},
      {"uptime_s", (io::WallMillis() - started_ms_) / 1000},
      {"ready", ready_},
      {"root", core::ToHex(s.root)},
      {"root_changed_ms", s.root_changed_ms},
      {"entries", s.counts.live()},
      {"files", s.counts.files},
      {"directories", s.counts.directories},
      {"symlinks", s.counts.symlinks},
      {"tombstones", s.counts.tombstones},
      {"hlc", s.hlc},
      {"scan",
       {{"state", s.scan_state},
        {"full_scans", s.full_scans},
        {"last_full_scan_ms", s.last_full_scan_ms},
        {"last_scan_duration_ms", s.last_scan_duration_ms},
        {"pending_paths", s.pending_paths},
        {"watching", s.watching},
        {"watch_limit_reached", s.watch_limit_reached},
        {"watcher_overflows", s.watcher_overflows},
        {"hashed_files", s.hashed_files},
        {"hashed_bytes", s.hashed_bytes},
        {"hash_retries", s.hash_retries},
        {"walk_errors", s.walk_errors},
        {"rejected", s.rejected}}},
      {"members", MembersJson()},
      {"sessions", repair_ ? repair_->SessionsJson() : nlohmann::json::array()},
      {"last_sync", repair_ ? repair_->LastSyncJson() : nlohmann::json::array()},
      {"converged", Converged()},
      {"sync_state",
       {{"mode", s.sync_mode},
        {"last_sync_ms", s.last_sync_ms},
        {"tombstone_ttl_s", config_.tombstone_ttl_s},
        {"tombstones_purged", s.tombstones_purged},
        {"last_purge_ms", s.last_purge_ms}}},
      {"gossip_address", gossip_ ? gossip_->gossip_address() : ""},
  };
  j["counters"]["gossip"] = gossip_ ? gossip_->CountersJson() : nlohmann::json::object();
  j["counters"]["repair"] = repair_ ? repair_->CountersJson() : nlohmann::json::object();
  j["counters"]["hooks"] = hooks_ ? hooks_->CountersJson() : nlohmann::json::object();
  return j;
}

nlohmann::json Agent::MembersJson() const {
  nlohmann::json members = gossip_ ? gossip_->MembersJson() : nlohmann::json::array();
  for (nlohmann::json& m : members) {
    m["last_agreement_ms"] = agreement_.LastAgreementMs(m.value("name", ""));
  }
  return members;
}

void Agent::InstallAdminHandlers() {
  admin_->Handle("status", [this](const nlohmann::json&, AdminServer::Reply reply) {
    reply(StatusJson());
  });
  // Members to sync with: `peer` alone, or every alive member whose root differs.
  auto targets = [this](const nlohmann::json& req)
      -> Result<std::vector<std::pair<std::string, std::string>>> {
    std::vector<std::pair<std::string, std::string>> out;
    if (!gossip_ || !repair_) return Status::Unavailable("the agent is still starting");
    if (req.contains("peer")) {
      if (!req["peer"].is_string()) return Status::InvalidArgument("peer must be a string");
      std::string peer = req["peer"];
      std::optional<core::MemberView> m = gossip_->membership().Find(peer);
      if (!m) return Status::NotFound("unknown peer \"" + peer + "\" (see gossync peers)");
      if (m->repair_addr.empty()) return Status::Unavailable(peer + " has no repair address");
      out.push_back({m->name, m->repair_addr});
      return out;
    }
    for (const core::MemberView& m : gossip_->membership().Members()) {
      if (m.state != core::MemberState::kAlive || m.repair_addr.empty()) continue;
      if (m.has_root && m.root == engine_->state().root) continue;
      out.push_back({m.name, m.repair_addr});
    }
    return out;
  };
  admin_->Handle("sync", [this, targets](const nlohmann::json& req, AdminServer::Reply reply) {
    auto t = targets(req);
    if (!t.ok()) return reply(t.status());
    int64_t timeout = req.value("timeout_ms", int64_t(30000));
    repair_->Sync(*t, timeout, std::move(reply));
  });
  admin_->Handle("diff", [this, targets](const nlohmann::json& req, AdminServer::Reply reply) {
    if (!req.contains("peer")) return reply(Status::InvalidArgument("diff needs a peer"));
    auto t = targets(req);
    if (!t.ok()) return reply(t.status());
    repair_->Diff(t->front().first, t->front().second, req.value("timeout_ms", int64_t(30000)),
                  std::move(reply));
  });
  admin_->Handle("conflicts", [this](const nlohmann::json&, AdminServer::Reply reply) {
    auto list = std::make_shared<nlohmann::json>(nlohmann::json::array());
    auto err = std::make_shared<Status>();
    engine_->Post(
        [list, err](store::Replica& r) {
          *err = r.index().ForEach([&](const store::IndexRecord& rec) {
            const core::Entry& e = rec.entry;
            if (e.deleted || !core::IsConflictCopy(e.path)) return Status::Ok();
            list->push_back({{"path", e.path},
                             {"original", core::ConflictOriginalPath(e.path)},
                             {"origin", e.origin},
                             {"size", e.size},
                             {"hlc", e.hlc}});
            return Status::Ok();
          });
        },
        [list, err, reply] {
          if (!err->ok()) return reply(*err);
          reply(nlohmann::json{{"conflicts", *list}});
        });
  });
  admin_->Handle("peers", [this](const nlohmann::json&, AdminServer::Reply reply) {
    reply(nlohmann::json{{"members", MembersJson()}});
  });
}

}  // namespace gossync::daemon
