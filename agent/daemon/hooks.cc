#include "agent/daemon/hooks.h"

#include <algorithm>

#include "agent/daemon/logging.h"
#include "agent/io/clock.h"

namespace gossync::daemon {
namespace {

std::string Join(const std::set<uint64_t>& ids) {
  std::string out;
  for (uint64_t id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id);
  }
  return out;
}

bool SameHook(const HookConfig& a, const HookConfig& b) {
  return a.pattern == b.pattern && a.command == b.command && a.timeout_s == b.timeout_s;
}

}  // namespace

HookRunner::HookRunner(uv_loop_t* loop, Options options)
    : loop_(loop), options_(std::move(options)), wait_timer_(io::Timer::Create(loop)) {}

HookRunner::~HookRunner() { Stop(); }

Status HookRunner::Configure(const std::vector<HookConfig>& configs) {
  // Compile everything first, so that a bad pattern changes nothing.
  std::vector<std::shared_ptr<Hook>> next;
  for (size_t i = 0; i < configs.size(); ++i) {
    Result<store::IgnoreMatcher> m = store::IgnoreMatcher::Create({configs[i].pattern});
    if (!m.ok()) {
      return Status::InvalidArgument("hook[" + std::to_string(i) +
                                     "].pattern: " + m.status().message());
    }
    auto h = std::make_shared<Hook>();
    h->config = configs[i];
    h->matcher = std::move(*m);
    next.push_back(std::move(h));
  }
  // Unchanged hooks carry over (pending paths, a running process, counters).
  std::vector<bool> reused(hooks_.size(), false);
  for (auto& n : next) {
    for (size_t j = 0; j < hooks_.size(); ++j) {
      if (!reused[j] && SameHook(hooks_[j]->config, n->config)) {
        reused[j] = true;
        n = hooks_[j];
        break;
      }
    }
  }
  for (size_t j = 0; j < hooks_.size(); ++j) {
    if (reused[j]) continue;
    Hook& old = *hooks_[j];
    if (!old.pending.empty()) {
      Logger("hook")->warn("hook_removed pattern=\"{}\" dropped_paths={}", old.config.pattern,
                           old.pending.size());
    }
    old.pending.clear();
    old.pending_sessions.clear();
    if (old.process) retired_.push_back(hooks_[j]);
  }
  hooks_ = std::move(next);
  return Status::Ok();
}

void HookRunner::Applied(uint64_t session, const std::vector<std::string>& paths) {
  if (stopped_ || paths.empty()) return;
  int64_t now = io::MonotonicMillis();
  for (size_t i = 0; i < hooks_.size(); ++i) {
    const std::shared_ptr<Hook>& h = hooks_[i];
    size_t matched = 0;
    for (const std::string& p : paths) {
      // Applied paths are files, symlinks, directories and deletions alike;
      // a directory pattern ("certs/") matches what lies beneath it.
      if (!h->matcher.Ignored(p, /*is_dir=*/false)) continue;
      ++matched;
      if (h->pending.size() >= kMaxPendingPaths && !h->pending.count(p)) {
        ++h->counters.paths_dropped;
        ++totals_.paths_dropped;
        continue;
      }
      if (h->pending.empty()) h->pending_since_ms = now;
      h->pending.insert(p);
      h->last_added_ms = now;
    }
    if (matched == 0) continue;
    h->pending_sessions.insert(session);
    Logger("hook")->debug("hook_pending hook={} session={} matched={} pending={}{}", i, session,
                          matched, h->pending.size(), h->process ? " running=true" : "");
    MaybeRun(h);
  }
  ArmWaitTimer();
}

void HookRunner::Poke() {
  if (stopped_) return;
  for (const auto& h : hooks_) MaybeRun(h);
  ArmWaitTimer();
}

void HookRunner::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (wait_timer_) wait_timer_->Close();
  for (auto* list : {&hooks_, &retired_}) {
    for (const auto& h : *list) {
      if (h->process && h->process->running()) {
        Logger("hook")->warn("hook_killed pattern=\"{}\" pid={} reason=shutdown", h->config.pattern,
                             h->process->pid());
      }
      h->process.reset();  // SIGKILL to its group, reaped in the background
      h->pending.clear();
    }
  }
  retired_.clear();
}

size_t HookRunner::running() const {
  size_t n = retired_.size();
  for (const auto& h : hooks_) n += h->process ? 1 : 0;
  return n;
}

void HookRunner::MaybeRun(const std::shared_ptr<Hook>& h) {
  if (stopped_ || h->process || h->pending.empty()) return;
  int64_t now = io::MonotonicMillis();
  bool waited = now - h->pending_since_ms >= int64_t(options_.max_wait_ms);
  bool settled = now - h->last_added_ms >= int64_t(options_.settle_ms);
  bool busy = options_.repair_busy && options_.repair_busy();
  if (!waited && (busy || !settled)) return;
  Start(h);
}

void HookRunner::Start(const std::shared_ptr<Hook>& h) {
  auto log = Logger("hook");
  size_t index = std::find(hooks_.begin(), hooks_.end(), h) - hooks_.begin();
  std::string input;
  for (const std::string& p : h->pending) {
    input += p;
    input += '\n';
  }
  size_t paths = h->pending.size();
  std::string sessions = Join(h->pending_sessions);
  h->pending.clear();
  h->pending_sessions.clear();

  io::ProcessOptions opts;
  opts.command = h->config.command;
  opts.stdin_bytes = std::move(input);
  opts.timeout_ms = uint64_t(h->config.timeout_s) * 1000;
  opts.cwd = options_.cwd;
  std::weak_ptr<Hook> weak = h;
  Result<std::unique_ptr<io::Process>> p =
      io::Process::Spawn(loop_, std::move(opts), [this, weak](const io::ProcessExit& e) {
        if (auto hook = weak.lock()) OnExit(hook, e);
      });
  h->last_run_ms = io::WallMillis();
  ++h->counters.runs;
  ++totals_.runs;
  if (!p.ok()) {
    ++h->counters.failed;
    ++totals_.failed;
    h->last_exit = -1;
    log->error("hook_failed hook={} pattern=\"{}\" sessions={} paths={} error=\"{}\"", index,
               h->config.pattern, sessions, paths, p.status().message());
    return;
  }
  h->process = std::move(*p);
  h->started_ms = io::MonotonicMillis();
  log->info("hook_started hook={} pattern=\"{}\" sessions={} paths={} pid={}", index,
            h->config.pattern, sessions, paths, h->process->pid());
}

void HookRunner::OnExit(const std::shared_ptr<Hook>& h, const io::ProcessExit& e) {
  auto log = Logger("hook");
  auto it = std::find(hooks_.begin(), hooks_.end(), h);
  std::string index = it == hooks_.end() ? "removed" : std::to_string(it - hooks_.begin());
  double seconds = double(io::MonotonicMillis() - h->started_ms) / 1000.0;
  int pid = h->process ? h->process->pid() : 0;
  h->process.reset();  // allowed from inside its own callback (handle.h rule 6)
  h->last_exit = e.exit_code;
  h->counters.seconds_sum += seconds;
  totals_.seconds_sum += seconds;
  if (e.success()) {
    ++h->counters.succeeded;
    ++totals_.succeeded;
    log->info("hook_done hook={} pattern=\"{}\" pid={} exit=0 seconds={:.3f}", index,
              h->config.pattern, pid, seconds);
  } else {
    ++h->counters.failed;
    ++totals_.failed;
    if (e.timed_out) {
      ++h->counters.timeouts;
      ++totals_.timeouts;
      log->error("hook_timeout hook={} pattern=\"{}\" pid={} timeout_s={}", index,
                 h->config.pattern, pid, h->config.timeout_s);
    } else {
      log->error("hook_failed hook={} pattern=\"{}\" pid={} exit={} signal={} seconds={:.3f}",
                 index, h->config.pattern, pid, e.exit_code, e.term_signal, seconds);
    }
  }
  retired_.erase(std::remove(retired_.begin(), retired_.end(), h), retired_.end());
  // The run queued while this one ran, if any.
  MaybeRun(h);
  ArmWaitTimer();
}

void HookRunner::ArmWaitTimer() {
  if (stopped_) return;
  // Wake when a waiting hook has settled (if repair is busy then, the end of
  // the last session Pokes), and at the latest when it has waited
  // max_wait_ms. A settle time already past is no reason to wake: that hook
  // waits for a Poke or its max_wait_ms.
  int64_t now = io::MonotonicMillis();
  int64_t due = -1;
  for (const auto& h : hooks_) {
    if (h->process || h->pending.empty()) continue;
    int64_t at = h->pending_since_ms + int64_t(options_.max_wait_ms);
    int64_t settle_at = h->last_added_ms + int64_t(options_.settle_ms);
    if (settle_at > now) at = std::min(at, settle_at);
    if (due < 0 || at < due) due = at;
  }
  if (due < 0) {
    wait_timer_->Stop();
    return;
  }
  wait_timer_->Start(uint64_t(std::max<int64_t>(due - now, 1)), [this] { Poke(); });
}

nlohmann::json HookRunner::CountersJson() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& h : hooks_) {
    const HookCounters& c = h->counters;
    list.push_back({{"pattern", h->config.pattern},
                    {"command", h->config.command},
                    {"runs", c.runs},
                    {"succeeded", c.succeeded},
                    {"failed", c.failed},
                    {"timeouts", c.timeouts},
                    {"paths_dropped", c.paths_dropped},
                    {"seconds_sum", c.seconds_sum},
                    {"pending", h->pending.size()},
                    {"running", h->process != nullptr},
                    {"last_run_ms", h->last_run_ms},
                    {"last_exit", h->last_exit}});
  }
  return {{"runs", totals_.runs},
          {"succeeded", totals_.succeeded},
          {"failed", totals_.failed},
          {"timeouts", totals_.timeouts},
          {"paths_dropped", totals_.paths_dropped},
          {"seconds_sum", totals_.seconds_sum},
          {"running", running()},
          {"hooks", list}};
}

}  // namespace gossync::daemon
