// HookRunner: the config's [[hook]] commands (docs/config.md), run after
// repair sessions have applied changes under their patterns.
//
// When a hook runs: a session's applied paths are matched against every
// hook's pattern (gitignore syntax, store::IgnoreMatcher); the matching ones
// join that hook's pending set. A hook with pending paths starts when it is
// not already running and repair is quiet: no session active and no new path
// for settle_ms; or, whatever repair does, once its oldest pending path has
// waited max_wait_ms. So one run covers a burst of sessions ("once the new
// certificates are all in place"), and paths that arrive while the hook runs
// make one more run afterwards, with all of them: at most one run is queued,
// whatever the number of sessions.
//
// How it runs: `/bin/sh -c COMMAND` in data_dir, in its own process group,
// the pending paths on stdin (sorted, one per line), stdout and stderr to
// the agent's (the journal), killed with its group after timeout_s. A
// failure, a timeout or a spawn error is logged and counted, never retried
// and never in the way of sync.
//
// Loop thread only. REQUIRES: SIGPIPE ignored (io::IgnoreSigpipe), as for
// io::Process: a hook may exit without reading its stdin.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "agent/io/process.h"
#include "agent/io/timer.h"
#include "agent/store/ignore.h"
#include "gossync/config.h"

namespace gossync::daemon {

struct HookCounters {
  uint64_t runs = 0;           // processes started
  uint64_t succeeded = 0;      // exited 0
  uint64_t failed = 0;         // exited non-zero, killed by a signal, or not started
  uint64_t timeouts = 0;       // killed after timeout_s (also counted in failed)
  uint64_t paths_dropped = 0;  // pending paths past kMaxPendingPaths
  double seconds_sum = 0;      // run time of the finished runs
};

class HookRunner {
 public:
  // Pending paths kept per hook; more are counted in paths_dropped (the hook
  // still runs, with the first ones).
  static constexpr size_t kMaxPendingPaths = 100'000;

  struct Options {
    std::string cwd;                    // data_dir
    uint64_t settle_ms = 1'000;         // quiet time after the last new path
    uint64_t max_wait_ms = 10'000;      // run even if repair is busy after this
    std::function<bool()> repair_busy;  // true while a repair session is active
  };

  HookRunner(uv_loop_t* loop, Options options);
  // Kills running hooks (no callback), drops pending paths.
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  // Installs `hooks` (start-up and SIGHUP). A hook whose pattern, command and
  // timeout are unchanged keeps its pending paths, its running process and
  // its counters; a removed hook's running process finishes (it is counted
  // in the totals) and its pending paths are dropped. An invalid pattern
  // (InvalidArgument naming "hook[i].pattern") changes nothing.
  Status Configure(const std::vector<HookConfig>& hooks);

  // Paths session `session` changed here (RepairService SessionSummary).
  void Applied(uint64_t session, const std::vector<std::string>& paths);
  // Repair may have gone quiet: starts the hooks that were waiting for it.
  void Poke();
  // Shutdown: kills running hooks and drops pending paths. Idempotent.
  void Stop();

  size_t size() const { return hooks_.size(); }
  size_t running() const;
  const HookCounters& totals() const { return totals_; }
  // {"runs":..., "succeeded":..., "failed":..., "timeouts":..., "running":...,
  //  "hooks": [{"pattern", "command", "runs", ..., "pending", "running",
  //  "last_exit", "last_run_ms"}]}
  nlohmann::json CountersJson() const;

 private:
  struct Hook {
    HookConfig config;
    store::IgnoreMatcher matcher;
    std::set<std::string> pending;
    std::set<uint64_t> pending_sessions;
    int64_t pending_since_ms = 0;  // monotonic, of the oldest pending path
    int64_t last_added_ms = 0;     // monotonic, of the newest pending path
    std::unique_ptr<io::Process> process;
    int64_t started_ms = 0;   // monotonic, of the running process
    int64_t last_run_ms = 0;  // wall clock of the last start
    int64_t last_exit = -1;   // exit code of the last run; -1: none or signal
    HookCounters counters;
  };

  void MaybeRun(const std::shared_ptr<Hook>& hook);
  void Start(const std::shared_ptr<Hook>& hook);
  void OnExit(const std::shared_ptr<Hook>& hook, const io::ProcessExit& exit);
  void ArmWaitTimer();

  uv_loop_t* loop_;
  Options options_;
  std::vector<std::shared_ptr<Hook>> hooks_;
  std::vector<std::shared_ptr<Hook>> retired_;  // removed by Configure, still running
  std::unique_ptr<io::Timer> wait_timer_;
  HookCounters totals_;
  bool stopped_ = false;
};

}  // namespace gossync::daemon
