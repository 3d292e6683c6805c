// Agent: the wiring of one gossyncd process (DESIGN.md section 6). Owns the
// local engine, the admin server, signal handling and systemd notification;
// the gossip and repair drivers plug in here.
//
// Loop thread only.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/daemon/admin_server.h"
#include "agent/daemon/gossip_driver.h"
#include "agent/daemon/hooks.h"
#include "agent/daemon/metrics.h"
#include "agent/daemon/metrics_server.h"
#include "agent/daemon/repair_service.h"
#include "agent/daemon/local_engine.h"
#include "agent/daemon/notify.h"
#include "agent/io/loop.h"
#include "agent/io/signal.h"
#include "agent/io/timer.h"
#include "gossync/config.h"

namespace gossync::daemon {

class Agent {
 public:
  Agent(io::Loop* loop, Config config, std::string config_path);
  ~Agent();

  // Starts everything; READY=1 follows once the first scan is done. An error
  // here (admin socket taken, index unreadable) ends the process.
  Status Start();
  // The process exit code once the loop has returned: 0 after SIGTERM, 1 after
  // a fatal error.
  int exit_code() const { return exit_code_; }

  nlohmann::json StatusJson() const;
  // The members as gossip knows them, with when each last agreed with us.
  nlohmann::json MembersJson() const;
  // The Prometheus exposition (metrics_listen).
  std::string MetricsText();

 private:
  void Shutdown(const std::string& why, int exit_code);
  void Reload();
  void UpdateSystemdStatus();
  void InstallAdminHandlers();
  void OnReady();
  void OnRootChanged();
  bool Converged() const;
  void OnSessionEnd(const SessionSummary& s);
  // Samples what the metrics keep over time: peer agreement, scan durations.
  void ObserveForMetrics();

  io::Loop* loop_;
  Config config_;
  std::string config_path_;
  Notifier notifier_;
  std::unique_ptr<LocalEngine> engine_;
  std::unique_ptr<GossipDriver> gossip_;
  std::unique_ptr<RepairService> repair_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<HookRunner> hooks_;
  std::unique_ptr<MetricsServer> metrics_server_;
  AgreementTracker agreement_;
  MetricsExtras metrics_;
  uint64_t scans_seen_ = 0;
  int64_t extended_ms_ = 0;  // last EXTEND_TIMEOUT_USEC while starting
  std::unique_ptr<io::SignalHandler> sigterm_, sigint_, sighup_;
  std::unique_ptr<io::Timer> watchdog_timer_, status_timer_, observe_timer_;
  std::unique_ptr<io::Timer> sync_timer_;  // sync_keeper.h
  uint64_t sync_round_ = 0;
  uint64_t started_ms_ = 0;
  bool ready_ = false;
  bool shutting_down_ = false;
  int exit_code_ = 0;
};

}  // namespace gossync::daemon
