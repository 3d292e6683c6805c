#include "agent/daemon/local_engine.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "agent/core/path.h"
#include "agent/daemon/logging.h"
#include "agent/io/clock.h"
#include "agent/store/purge.h"
#include "agent/store/scanner.h"

namespace gossync::daemon {
namespace {

// A hash job takes files until it has this many bytes or files, so one big
// tree is spread over the pool and progress is committed as it goes.
constexpr uint64_t kChunkBytes = 64ull << 20;
constexpr size_t kChunkFiles = 1024;
// Watcher paths looked at per strand item.
constexpr size_t kPendingBatch = 4096;
// A file that changed while being hashed is looked at again after this long.
constexpr uint64_t kRetryDelayMs = 250;
// Rescan period when the watcher cannot see everything (watch limit).
constexpr uint64_t kBlindRescanMs = 60'000;

size_t HashParallelism() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : n;
}

int64_t Now() { return static_cast<int64_t>(io::WallMillis()); }

// A purge pass every tenth of the ttl, between 1 s and 1 h: an expired
// tombstone goes within ttl / 10 (at most an hour) of its expiry.
uint64_t PurgeIntervalMs(uint64_t ttl_ms) {
  return std::clamp<uint64_t>(ttl_ms / 10, 1'000, 3'600'000);
}

}  // namespace

struct LocalEngine::HashJob {
  std::vector<std::vector<store::Observation>> chunks;
  size_t next = 0;
  size_t running = 0;   // hash jobs on the pool
  size_t applying = 0;  // strand items applying hashed chunks
  std::function<void()> done;
};

LocalEngine::LocalEngine(uv_loop_t* loop, const Config& config,
                         std::function<void(const core::Hash256&)> on_root_changed)
    : loop_(loop),
      config_(config),
      on_root_changed_(std::move(on_root_changed)),
      strand_(std::make_unique<io::Strand>(loop)),
      rescan_timer_(io::Timer::Create(loop)),
      retry_timer_(io::Timer::Create(loop)),
      purge_timer_(io::Timer::Create(loop)) {
  state_.node_name = config.node;
}

LocalEngine::~LocalEngine() { *alive_ = false; }

void LocalEngine::Start(std::function<void(const Status&)> on_ready) {
  on_ready_ = std::move(on_ready);
  auto fail = [this](const Status& s) {
    auto cb = std::move(on_ready_);
    on_ready_ = nullptr;
    if (cb) cb(s);
  };
  Result<store::RootDir> rd = store::RootDir::Open(config_.data_dir);
  if (!rd.ok()) return fail(rd.status().Prefixed("data_dir"));
  root_dir_ = std::make_unique<store::RootDir>(std::move(*rd));
  if (Status s = SetIgnore(config_.ignore); !s.ok()) return fail(s);

  auto opened = std::make_shared<Result<std::unique_ptr<store::Replica>>>(
      Status::Internal("not opened"));
  std::string state_dir = config_.state_dir;
  std::string node = config_.node;
  int depth = static_cast<int>(config_.tree_depth);
  Status posted = strand_->Post(
      [opened, state_dir, node, depth] {
        *opened = store::Replica::Open(state_dir, node, depth, [] { return io::WallMillis(); });
      },
      [this, opened, fail, alive = alive_] {
        if (!*alive) return;
        if (!opened->ok()) return fail(opened->status().Prefixed("index"));
        replica_ = std::move(opened->value());
        state_.node_id = replica_->node_id();
        Logger("scan")->info("index_opened entries={} tombstones={} load_ms={} root={}",
                             replica_->counts().live(), replica_->counts().tombstones,
                             replica_->load_ms(), core::ToHex(replica_->root()));
        Publish(replica_->root(), replica_->counts(), replica_->hlc());
        PublishSync(replica_->sync_point());
        StartWatcher();
        Rescan("start");
        // The first pass right away (it waits behind the scan on the strand).
        const uint64_t every = PurgeIntervalMs(config_.tombstone_ttl_s * 1000);
        purge_timer_->Start(0, every, [this] { Purge(); });
      });
  if (!posted.ok()) fail(posted);
}

void LocalEngine::Stop(std::function<void()> done) {
  stopping_ = true;
  watcher_.reset();
  rescan_timer_->Stop();
  retry_timer_->Stop();
  purge_timer_->Stop();
  strand_->Drain(std::move(done));
}

void LocalEngine::Post(std::function<void(store::Replica&)> work, std::function<void()> after) {
  Status s = strand_->Post(
      [this, work = std::move(work)] { work(*replica_); },
      [after = std::move(after), alive = alive_] {
        if (*alive && after) after();
      });
  if (!s.ok()) Logger("agent")->debug("strand_refused error=\"{}\"", s.message());
}

void LocalEngine::Publish(const core::Hash256& root, const store::IndexCounts& counts,
                          uint64_t hlc) {
  bool changed = root != state_.root;
  state_.root = root;
  state_.counts = counts;
  state_.hlc = hlc;
  if (changed) {
    state_.root_changed_ms = Now();
    if (on_root_changed_) on_root_changed_(root);
  }
}

void LocalEngine::PublishSync(const core::SyncPoint& p) {
  const uint64_t now = io::WallMillis();
  SetSyncState(p, core::ModeAt(p, now, config_.tombstone_ttl_s * 1000));
}

void LocalEngine::SetSyncState(const core::SyncPoint& p, core::SyncMode mode) {
  const std::string name = core::SyncModeName(mode);
  if (name != state_.sync_mode || !sync_published_) {
    const int64_t ago = p.wall_ms ? Now() - static_cast<int64_t>(p.wall_ms) : -1;
    Logger("agent")->info("sync_mode mode={} was={} last_sync_ms={} last_sync_ago_s={}", name,
                          state_.sync_mode, p.wall_ms, ago < 0 ? -1 : ago / 1000);
  }
  sync_published_ = true;
  state_.sync_mode = name;
  state_.last_sync_ms = static_cast<int64_t>(p.wall_ms);
}

void LocalEngine::KeepSync(std::optional<core::Hash256> peer_root,
                           std::function<void(core::SyncMode)> done) {
  if (!replica_ || stopping_) return;
  struct Out {
    core::SyncPoint point;
    core::SyncMode mode = core::SyncMode::kNew;
    bool timed_out = false;
    Status status;
  };
  auto out = std::make_shared<Out>();
  const uint64_t ttl = config_.tombstone_ttl_s * 1000;
  Post(
      [this, out, ttl, peer_root](store::Replica& r) {
        const uint64_t now = r.WallNow();
        core::SyncMode mode = core::ModeAt(r.sync_point(), now, ttl);
        // Identical to a live peer right now (gossip's root against ours,
        // read together with our counter on the strand): every change up
        // to this counter is on that peer.
        const core::SyncPoint here{now, r.counter()};
        if (mode == core::SyncMode::kCurrent && peer_root && r.root() == *peer_root) {
          out->status = r.RecordSync(here);
        }
        if (mode == core::SyncMode::kCatchUp) {
          if (catch_up_since_ms_ == 0) {
            catch_up_since_ms_ = now;
          } else if (now - catch_up_since_ms_ > ttl) {
            out->status = r.RecordSync(here);
            out->timed_out = out->status.ok();
            if (out->status.ok()) mode = core::SyncMode::kCurrent;
          }
        }
        if (mode != core::SyncMode::kCatchUp) catch_up_since_ms_ = 0;
        out->point = r.sync_point();
        out->mode = mode;
      },
      [this, out, done = std::move(done)] {
        if (!out->status.ok()) {
          Logger("agent")->warn("sync_point_failed error=\"{}\"", out->status.message());
        }
        if (out->timed_out) {
          Logger("agent")->warn(
              "catch_up_timeout: no current peer met in tombstone_ttl_s={}; taking this node as "
              "current (the whole cluster was away longer than the ttl)",
              config_.tombstone_ttl_s);
        }
        SetSyncState(out->point, out->mode);
        if (done) done(out->mode);
      });
}

void LocalEngine::Purge() {
  if (purging_ || !replica_ || stopping_) return;
  purging_ = true;
  PurgeFrom("", 0, 0, Now());
}

void LocalEngine::PurgeFrom(std::string cursor, uint64_t purged, uint64_t kept,
                            int64_t started_ms) {
  struct Out {
    bool allowed = false;
    Result<store::PurgeStepResult> step = Status::Internal("not run");
    core::Hash256 root{};
    store::IndexCounts counts;
    uint64_t hlc = 0;
  };
  auto out = std::make_shared<Out>();
  const uint64_t ttl = config_.tombstone_ttl_s * 1000;
  const store::RootDir* rd = root_dir_.get();
  Post(
      [out, cursor = std::move(cursor), ttl, rd](store::Replica& r) {
        const uint64_t now = r.WallNow();
        // Checked at every step: a session may have changed the sync point.
        out->allowed = store::MayPurge(r, now, ttl);
        if (!out->allowed) return;
        store::PurgeOptions o;
        o.ttl_ms = ttl;
        out->step = store::PurgeStep(r, *rd, now, o, cursor);
        out->root = r.root();
        out->counts = r.counts();
        out->hlc = r.hlc();
      },
      [this, out, purged, kept, started_ms] {
        auto log = Logger("scan");
        if (!out->allowed) {
          purging_ = false;
          log->debug("tombstone_purge skipped reason=catch_up");
          return;
        }
        if (!out->step.ok()) {
          purging_ = false;
          log->error("tombstone_purge_failed error=\"{}\"", out->step.status().message());
          return;
        }
        const store::PurgeStepResult& step = *out->step;
        if (step.purged > 0) {
          state_.tombstones_purged += step.purged;
          Publish(out->root, out->counts, out->hlc);
        }
        if (!step.next.empty() && !stopping_) {
          PurgeFrom(step.next, purged + step.purged, kept + step.kept, started_ms);
          return;
        }
        purging_ = false;
        state_.last_purge_ms = Now();
        const uint64_t total = purged + step.purged, left = kept + step.kept;
        if (total > 0 || left > 0) {
          log->info("tombstone_purge purged={} kept={} tombstones={} ms={}", total, left,
                    out->counts.tombstones, state_.last_purge_ms - started_ms);
        }
      });
}

Status LocalEngine::SetIgnore(const std::vector<std::string>& patterns) {
  Result<store::IgnoreMatcher> m = store::IgnoreMatcher::Create(patterns);
  if (!m.ok()) return m.status().Prefixed("ignore");
  ignore_ = std::make_shared<const store::IgnoreMatcher>(std::move(*m));
  return Status::Ok();
}

void LocalEngine::StartWatcher() {
  io::DirWatcherOptions opts;
  opts.debounce_ms = config_.debounce_ms;
  opts.max_delay_ms = std::max<uint64_t>(config_.debounce_ms * 4, 100);
  opts.ignore = [this](std::string_view rel, bool is_dir) {
    return ignore_->Ignored(rel, is_dir);
  };
  io::DirWatcherCallbacks cbs;
  cbs.on_changes = [this](std::vector<std::string> paths) { OnWatcherChanges(std::move(paths)); };
  cbs.on_overflow = [this] {
    ++state_.watcher_overflows;
    Logger("scan")->warn("inotify_overflow action=rescan");
    Rescan("inotify overflow");
  };
  cbs.on_watch_limit = [this] {
    state_.watch_limit_reached = true;
    Logger("scan")->warn(
        "inotify_watch_limit reached: some directories are not watched; rescanning every {}s "
        "(raise fs.inotify.max_user_watches)",
        kBlindRescanMs / 1000);
    rescan_timer_->Start(kBlindRescanMs, kBlindRescanMs, [this] { Rescan("watch limit"); });
  };
  cbs.on_error = [this](const Status& error) {
    state_.watching = false;
    Logger("scan")->error("watcher_stopped error=\"{}\"", error.message());
  };
  Result<std::unique_ptr<io::DirWatcher>> w =
      io::DirWatcher::Start(loop_, config_.data_dir, std::move(opts), std::move(cbs));
  if (!w.ok()) {
    Logger("scan")->warn("watcher_unavailable error=\"{}\" fallback=periodic_rescan",
                         w.status().message());
    rescan_timer_->Start(kBlindRescanMs, kBlindRescanMs, [this] { Rescan("no watcher"); });
    return;
  }
  watcher_ = std::move(*w);
  state_.watching = true;
  state_.watch_limit_reached = watcher_->watch_limit_reached();
  if (config_.rescan_interval_s > 0 && !state_.watch_limit_reached) {
    uint64_t every = uint64_t(config_.rescan_interval_s) * 1000;
    rescan_timer_->Start(every, every, [this] { Rescan("periodic"); });
  }
}

void LocalEngine::OnWatcherChanges(std::vector<std::string> paths) {
  for (auto& p : paths) {
    if (core::ValidatePath(p).ok()) pending_.insert(std::move(p));
  }
  state_.pending_paths = pending_.size();
  ProcessPending();
}

void LocalEngine::Retry(std::vector<std::string> paths) {
  if (paths.empty()) return;
  state_.hash_retries += paths.size();
  for (auto& p : paths) retry_.insert(std::move(p));
  if (retry_timer_->active()) return;
  retry_timer_->Start(kRetryDelayMs, [this] {
    pending_.insert(retry_.begin(), retry_.end());
    retry_.clear();
    state_.pending_paths = pending_.size();
    ProcessPending();
  });
}

void LocalEngine::ProcessPending() {
  if (processing_ || pending_.empty() || !replica_ || stopping_) return;
  processing_ = true;
  auto paths = std::make_shared<std::vector<std::string>>();
  while (!pending_.empty() && paths->size() < kPendingBatch) {
    paths->push_back(std::move(pending_.extract(pending_.begin()).value()));
  }
  state_.pending_paths = pending_.size();
  struct Plan {
    std::vector<store::Observation> need_hash, ready;
    std::vector<std::string> errors;
  };
  auto plan = std::make_shared<Plan>();
  const store::RootDir* rd = root_dir_.get();
  Post(
      [paths, plan, rd](store::Replica& r) {
        for (const std::string& p : *paths) {
          Result<std::optional<store::LocalStat>> st = store::LstatOne(*rd, p);
          if (!st.ok()) {
            plan->errors.push_back(p + ": " + st.status().message());
            continue;
          }
          Result<std::optional<store::IndexRecord>> rec = r.Get(p);
          if (!rec.ok()) {
            plan->errors.push_back(p + ": " + rec.status().message());
            continue;
          }
          const std::optional<store::IndexRecord>& old = *rec;
          if (!st->has_value()) {
            if (!old || old->entry.deleted) continue;
            plan->ready.push_back({p, std::nullopt, {}});
            if (old->entry.kind == core::EntryKind::kDirectory) {
              // Moved away or deleted as a whole: everything beneath goes too.
              Status s = r.index().ForEachUnder(p, [&](const store::IndexRecord& child) {
                if (!child.entry.deleted) plan->ready.push_back({child.entry.path, std::nullopt, {}});
                return Status::Ok();
              });
              if (!s.ok()) plan->errors.push_back(p + ": " + s.message());
            }
            continue;
          }
          const store::LocalStat& now = **st;
          if (old && !old->entry.deleted && old->stat && old->stat->SameFile(now)) continue;
          store::Observation obs{p, now, {}};
          if (now.kind == core::EntryKind::kFile) {
            plan->need_hash.push_back(std::move(obs));
          } else {
            plan->ready.push_back(std::move(obs));
          }
        }
      },
      [this, plan] {
        for (const auto& e : plan->errors) Logger("scan")->warn("lstat_failed {}", e);
        HashAndApply(std::move(plan->need_hash), std::move(plan->ready), [this] {
          processing_ = false;
          ProcessPending();
        });
      });
}

void LocalEngine::Rescan(const std::string& reason) {
  if (!replica_ || stopping_) return;
  if (scanning_) {
    rescan_requested_ = true;
    return;
  }
  scanning_ = true;
  rescan_requested_ = false;
  state_.scan_state = "scanning";
  int64_t started = Now();
  Logger("scan")->info("full_scan_started reason=\"{}\"", reason);
  auto walk = std::make_shared<Result<store::WalkResult>>(Status::Internal("not walked"));
  const store::RootDir* rd = root_dir_.get();
  auto ignore = ignore_;
  Status s = io::QueueWork(
      loop_, [walk, rd, ignore] { *walk = store::Walk(*rd, *ignore); },
      [this, walk, started, ignore, alive = alive_] {
        if (!*alive || stopping_) return;
        if (!walk->ok()) {
          Logger("scan")->error("full_scan_failed error=\"{}\"", walk->status().message());
          scanning_ = false;
          state_.scan_state = "idle";
          if (on_ready_) {
            auto cb = std::move(on_ready_);
            on_ready_ = nullptr;
            cb(walk->status().Prefixed("scan"));
          }
          return;
        }
        auto w = std::make_shared<store::WalkResult>(std::move(walk->value()));
        state_.walk_errors = w->errors.size();
        for (const auto& e : w->errors) {
          Logger("scan")->warn("unreadable_dir path=\"{}\" error=\"{}\"", e.path, e.status.message());
        }
        if (w->bad_names || w->special) {
          Logger("scan")->info("skipped special={} bad_names={}", w->special, w->bad_names);
        }
        auto diff = std::make_shared<Result<store::ScanDiff>>(Status::Internal("no diff"));
        Post([w, diff](store::Replica& r) { *diff = r.FullScanDiff(w->entries); },
             [this, w, diff, started, ignore] {
               if (!diff->ok()) {
                 Logger("scan")->error("scan_diff_failed error=\"{}\"", diff->status().message());
                 FinishFullScan(started);
                 return;
               }
               std::vector<store::Observation> need_hash, ready;
               for (size_t i : (*diff)->to_hash) {
                 store::Observation& o = w->entries[i];
                 (o.stat->kind == core::EntryKind::kFile ? need_hash : ready)
                     .push_back(std::move(o));
               }
               for (std::string& p : (*diff)->missing) {
                 // Not seen, but maybe only because its directory was unreadable,
                 // or because it is ignored now: neither is a deletion.
                 bool unsure = ignore->Ignored(p, false);
                 for (const auto& e : w->errors) unsure = unsure || core::IsUnder(p, e.path);
                 if (!unsure) ready.push_back({std::move(p), std::nullopt, {}});
               }
               Logger("scan")->debug("scan_diff to_hash={} ready={}", need_hash.size(),
                                     ready.size());
               HashAndApply(std::move(need_hash), std::move(ready),
                            [this, started] { FinishFullScan(started); });
             });
      });
  if (!s.ok()) {
    scanning_ = false;
    Logger("scan")->error("full_scan_not_started error=\"{}\"", s.message());
  }
}

void LocalEngine::FinishFullScan(int64_t started_ms) {
  scanning_ = false;
  state_.scan_state = "idle";
  state_.full_scans++;
  state_.last_full_scan_ms = Now();
  state_.last_scan_duration_ms = state_.last_full_scan_ms - started_ms;
  Logger("scan")->info("full_scan_done duration_ms={} entries={} root={}",
                       state_.last_scan_duration_ms, state_.counts.live(),
                       core::ToHex(state_.root));
  if (on_ready_) {
    auto cb = std::move(on_ready_);
    on_ready_ = nullptr;
    cb(Status::Ok());
  }
  if (rescan_requested_) Rescan("requested during a scan");
}

void LocalEngine::HashAndApply(std::vector<store::Observation> need_hash,
                               std::vector<store::Observation> ready,
                               std::function<void()> done) {
  auto job = std::make_shared<HashJob>();
  uint64_t bytes = 0;
  for (auto& o : need_hash) {
    if (job->chunks.empty() || job->chunks.back().size() >= kChunkFiles || bytes >= kChunkBytes) {
      job->chunks.emplace_back();
      bytes = 0;
    }
    bytes += o.stat->size;
    job->chunks.back().push_back(std::move(o));
  }
  job->done = std::move(done);
  // Pump starts hash jobs while fewer than HashParallelism() run, applies
  // each finished chunk on the strand, and calls `done` once all are in.
  auto pump = std::make_shared<std::function<void()>>();
  *pump = [this, job, pump_weak = std::weak_ptr<std::function<void()>>(pump)] {
    auto self = pump_weak.lock();
    while (self && !stopping_ && job->running < HashParallelism() &&
           job->next < job->chunks.size()) {
      auto chunk = std::make_shared<std::vector<store::Observation>>(
          std::move(job->chunks[job->next++]));
      auto retry = std::make_shared<std::vector<std::string>>();
      auto hashed = std::make_shared<std::pair<uint64_t, uint64_t>>(0, 0);
      job->running++;
      const store::RootDir* rd = root_dir_.get();
      Status s = io::QueueWork(
          loop_,
          [chunk, retry, hashed, rd] {
            std::vector<store::Observation> out;
            out.reserve(chunk->size());
            for (store::Observation& o : *chunk) {
              Result<core::Hash256> h = store::HashFile(*rd, o.path, *o.stat);
              if (h.ok()) {
                o.hash = *h;
                hashed->first++;
                hashed->second += o.stat->size;
                out.push_back(std::move(o));
                continue;
              }
              // Gone since the walk: a deletion. Changing: look again later.
              Result<std::optional<store::LocalStat>> st = store::LstatOne(*rd, o.path);
              if (st.ok() && !st->has_value()) {
                out.push_back({std::move(o.path), std::nullopt, {}});
              } else {
                retry->push_back(std::move(o.path));
              }
            }
            *chunk = std::move(out);
          },
          [this, job, chunk, retry, hashed, self, alive = alive_] {
            if (!*alive) return;
            job->running--;
            state_.hashed_files += hashed->first;
            state_.hashed_bytes += hashed->second;
            Retry(std::move(*retry));
            job->applying++;
            Apply(std::move(*chunk), [job, self] {
              job->applying--;
              (*self)();
            });
            (*self)();
          });
      if (!s.ok()) job->running--;
    }
    if (job->done && (stopping_ || (job->next == job->chunks.size() && job->running == 0 &&
                                    job->applying == 0))) {
      auto finished = std::move(job->done);
      job->done = nullptr;
      finished();
    }
  };
  // Directories, symlinks and deletions first: they need no hashing.
  job->applying++;
  Apply(std::move(ready), [job, pump] {
    job->applying--;
    (*pump)();
  });
}

void LocalEngine::Apply(std::vector<store::Observation> observations, std::function<void()> done) {
  if (observations.empty()) {
    done();
    return;
  }
  // The paths, to look at again if the commit fails (a full disk, say):
  // dropped, their changes would wait for the next full rescan, and repair
  // would refuse to touch them meanwhile (the disk differs from the index).
  std::vector<std::string> paths;
  paths.reserve(observations.size());
  for (const store::Observation& o : observations) paths.push_back(o.path);
  auto obs = std::make_shared<std::vector<store::Observation>>(std::move(observations));
  struct Out {
    Result<store::Changes> changes = Status::Internal("not applied");
    store::IndexCounts counts;
    uint64_t hlc = 0;
  };
  auto out = std::make_shared<Out>();
  Post(
      [obs, out](store::Replica& r) {
        out->changes = r.ApplyLocal(std::move(*obs));
        out->counts = r.counts();
        out->hlc = r.hlc();
      },
      [this, out, paths = std::move(paths), done = std::move(done)]() mutable {
        if (!out->changes.ok()) {
          Logger("scan")->error("apply_failed error=\"{}\" paths={} (retried)",
                                out->changes.status().message(), paths.size());
          Retry(std::move(paths));
        } else {
          const store::Changes& c = *out->changes;
          for (const auto& [path, why] : c.rejected) {
            Logger("scan")->warn("rejected path=\"{}\" reason=\"{}\"", path, why);
          }
          state_.rejected += c.rejected.size();
          for (const store::EntryChange& ch : c.changed) {
            Logger("scan")->debug("local_change path=\"{}\" kind={} deleted={} vv={}",
                                  ch.entry.path, core::KindName(ch.entry.kind), ch.entry.deleted,
                                  ch.entry.vv.ToString());
          }
          Publish(c.root, out->counts, out->hlc);
        }
        done();
      });
}

}  // namespace gossync::daemon
