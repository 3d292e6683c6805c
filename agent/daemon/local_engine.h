// LocalEngine: the local half of the agent (DESIGN.md section 5). It keeps
// the Replica (index + Merkle tree) in step with data_dir: a full scan at
// start and every rescan_interval, and the inotify watcher in between.
//
// Threads: created, called and destroyed on the loop thread. The Replica is
// touched only by work posted to the store strand (one item at a time, on the
// pool); walking and hashing run as separate pool jobs, several at once.
// Nothing here blocks the loop on disk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/core/catch_up.h"
#include "agent/core/hash.h"
#include "agent/io/dir_watcher.h"
#include "agent/io/timer.h"
#include "agent/io/work.h"
#include "agent/store/fs.h"
#include "agent/store/ignore.h"
#include "agent/store/index.h"
#include "agent/store/local_stat.h"
#include "agent/store/replica.h"
#include "gossync/config.h"

namespace gossync::daemon {

// What the loop knows of the local dataset, refreshed after every index change.
struct LocalState {
  std::string node_name;
  core::NodeId node_id = 0;
  core::Hash256 root{};
  store::IndexCounts counts;
  uint64_t hlc = 0;
  std::string scan_state = "starting";  // starting, scanning, idle
  uint64_t full_scans = 0;
  int64_t last_full_scan_ms = 0;        // wall clock when the last full scan ended
  int64_t last_scan_duration_ms = 0;
  int64_t root_changed_ms = 0;          // wall clock of the last root change
  size_t pending_paths = 0;             // watcher paths waiting to be looked at
  bool watching = false;
  bool watch_limit_reached = false;
  uint64_t watcher_overflows = 0;
  uint64_t hashed_files = 0;
  uint64_t hashed_bytes = 0;
  uint64_t hash_retries = 0;            // files that changed while hashed
  uint64_t walk_errors = 0;             // unreadable directories in the last scan
  uint64_t rejected = 0;                // observations the replica refused
  // Tombstones and catch-up mode (docs/tombstones.md).
  std::string sync_mode = "new";        // core::SyncModeName
  int64_t last_sync_ms = 0;             // wall clock of the sync point; 0: never
  uint64_t tombstones_purged = 0;       // by the purge job, since start
  int64_t last_purge_ms = 0;            // wall clock when the last purge pass ended
};

class LocalEngine {
 public:
  // `on_root_changed` runs on the loop after every change of the root.
  LocalEngine(uv_loop_t* loop, const Config& config,
              std::function<void(const core::Hash256&)> on_root_changed);
  ~LocalEngine();
  LocalEngine(const LocalEngine&) = delete;
  LocalEngine& operator=(const LocalEngine&) = delete;

  // Opens the index (on the strand), starts the watcher and the first full
  // scan; `on_ready` runs once that scan is done (READY=1), or with the error
  // that stops the agent (bad index, unreadable data_dir).
  void Start(std::function<void(const Status&)> on_ready);
  // Stops watching and scanning, lets queued index work finish, then `done`.
  void Stop(std::function<void()> done);

  // Runs `work` on the store strand with the Replica, then `after` on the loop.
  // REQUIRES: Start succeeded. The work must not block for long: it delays
  // every other index user.
  void Post(std::function<void(store::Replica&)> work, std::function<void()> after);
  // Publishes the replica's root and counts to the loop after a change made
  // through Post (repair). Call from the `after` of such work with the values
  // read in `work`.
  void Publish(const core::Hash256& root, const store::IndexCounts& counts, uint64_t hlc);

  // A repair session recorded sync point `p` (from the `after` of its work).
  void PublishSync(const core::SyncPoint& p);
  // Catch-up bookkeeping, run now and then (the agent's sync timer): on the
  // strand, refreshes the sync point if this node is current and its root
  // equals `peer_root` (an alive member's, from gossip); ends a catch-up that
  // has lasted tombstone_ttl without meeting a current peer (the whole
  // cluster was away). Then `done(mode)` on the loop.
  void KeepSync(std::optional<core::Hash256> peer_root, std::function<void(core::SyncMode)> done);

  // Starts a full scan now unless one is running.
  void Rescan(const std::string& reason);
  // New ignore patterns (SIGHUP). The next scan applies them.
  Status SetIgnore(const std::vector<std::string>& patterns);

  const LocalState& state() const { return state_; }
  const store::RootDir* root_dir() const { return root_dir_.get(); }
  std::shared_ptr<const store::IgnoreMatcher> ignore() const { return ignore_; }

 private:
  struct HashJob;
  void StartWatcher();
  void OnWatcherChanges(std::vector<std::string> paths);
  void ProcessPending();
  void FinishFullScan(int64_t started_ms);
  // Hashes `need_hash` on the pool (several jobs at once), then applies them
  // with `ready` in one strand item; `done` runs after that.
  void HashAndApply(std::vector<store::Observation> need_hash,
                    std::vector<store::Observation> ready, std::function<void()> done);
  void Apply(std::vector<store::Observation> observations, std::function<void()> done);
  void Retry(std::vector<std::string> paths);
  // The tombstone purge (store/purge.h): a pass of bounded strand items.
  void Purge();
  void PurgeFrom(std::string cursor, uint64_t purged, uint64_t kept, int64_t started_ms);
  void SetSyncState(const core::SyncPoint& p, core::SyncMode mode);

  uv_loop_t* loop_;
  Config config_;
  std::function<void(const core::Hash256&)> on_root_changed_;
  std::unique_ptr<io::Strand> strand_;
  std::unique_ptr<store::Replica> replica_;  // touched only on the strand
  std::unique_ptr<store::RootDir> root_dir_;
  std::shared_ptr<const store::IgnoreMatcher> ignore_;
  std::unique_ptr<io::DirWatcher> watcher_;
  std::unique_ptr<io::Timer> rescan_timer_;
  std::unique_ptr<io::Timer> retry_timer_;
  std::unique_ptr<io::Timer> purge_timer_;
  bool purging_ = false;            // a purge pass is in flight
  bool sync_published_ = false;     // the sync mode was logged once
  uint64_t catch_up_since_ms_ = 0;  // strand only: when KeepSync first saw catch-up

  std::set<std::string> pending_;  // watcher paths not yet looked at
  std::set<std::string> retry_;    // paths that changed while hashed
  bool processing_ = false;        // a watcher batch is in flight
  bool scanning_ = false;          // a full scan is in flight
  bool rescan_requested_ = false;
  bool stopping_ = false;
  std::function<void(const Status&)> on_ready_;
  LocalState state_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gossync::daemon
