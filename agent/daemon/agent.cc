#include "agent/daemon/agent.h"

#include <signal.h>

#include "agent/core/hash.h"
#include "agent/daemon/check.h"
#include "agent/daemon/logging.h"
#include "agent/io/clock.h"
#include "gossync/version.h"

namespace gossync::daemon {

Agent::Agent(io::Loop* loop, Config config, std::string config_path)
    : loop_(loop), config_(std::move(config)), config_path_(std::move(config_path)) {}

Agent::~Agent() = default;

Status Agent::Start() {
  started_ms_ = io::WallMillis();
  auto log = Logger("agent");
  log->info("starting version={} node={} data_dir=\"{}\" state_dir=\"{}\"", kVersion,
            config_.node, config_.data_dir, config_.state_dir);

  engine_ = std::make_unique<LocalEngine>(loop_->get(), config_, [this](const core::Hash256&) {
    UpdateSystemdStatus();
  });
  admin_ = std::make_unique<AdminServer>(loop_->get());
  InstallAdminHandlers();
  GOSSYNC_RETURN_IF_ERROR(admin_->Listen(config_.admin_socket));

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

  engine_->Start([this, log](const Status& s) {
    if (!s.ok()) {
      log->critical("start_failed error=\"{}\"", s.message());
      Shutdown("fatal error", 1);
      return;
    }
    ready_ = true;
    log->info("ready root={} entries={} scan_ms={}", core::ToHex(engine_->state().root),
              engine_->state().counts.live(), engine_->state().last_scan_duration_ms);
    notifier_.Ready();
    UpdateSystemdStatus();
  });
  return Status::Ok();
}

void Agent::Shutdown(const std::string& why, int exit_code) {
  if (shutting_down_) return;
  shutting_down_ = true;
  exit_code_ = exit_code;
  Logger("agent")->info("stopping reason=\"{}\"", why);
  notifier_.Stopping();
  admin_->Close();
  watchdog_timer_->Close();
  status_timer_->Close();
  sighup_->Close();
  // The second SIGTERM/SIGINT is ignored while we drain; systemd escalates
  // to SIGKILL after TimeoutStopSec if draining hangs.
  engine_->Stop([this] {
    Logger("agent")->info("stopped");
    sigterm_->Close();
    sigint_->Close();
    engine_.reset();
  });
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
  if (next.ignore != config_.ignore) {
    if (Status s = engine_->SetIgnore(next.ignore); !s.ok()) log->error("reload {}", s.message());
    engine_->Rescan("ignore patterns changed");
  }
  config_.log_level = next.log_level;
  config_.ignore = next.ignore;
  log->info("reloaded config=\"{}\"", config_path_);
  notifier_.ReloadDone();
}

void Agent::UpdateSystemdStatus() {
  if (!engine_) return;
  const LocalState& s = engine_->state();
  notifier_.Status(std::string(ready_ ? "" : "starting; ") + "root " +
                   core::ToHex(s.root).substr(0, 12) + ", " + std::to_string(s.counts.live()) +
                   " entries, scan " + s.scan_state);
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
      {"members", nlohmann::json::array()},
      {"sessions", nlohmann::json::array()},
      {"last_sync", nlohmann::json::array()},
      {"converged", true},
  };
  return j;
}

void Agent::InstallAdminHandlers() {
  admin_->Handle("status", [this](const nlohmann::json&, AdminServer::Reply reply) {
    reply(StatusJson());
  });
  admin_->Handle("peers", [](const nlohmann::json&, AdminServer::Reply reply) {
    reply(nlohmann::json{{"members", nlohmann::json::array()}});
  });
}

}  // namespace gossync::daemon
