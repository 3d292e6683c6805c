// DirWatcher: a recursive directory watcher on raw inotify, debounced, for the scanner
// (DESIGN.md section 5). Lifetime: handle.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/io/handle.h"
#include "agent/io/timer.h"
#include "gossync/status.h"

namespace gossync::io {

struct DirWatcherOptions {
  // A batch is delivered once no change has arrived for `debounce_ms`...
  uint64_t debounce_ms = 50;
  // ...or at the latest `max_delay_ms` after its first change, even if changes go on.
  uint64_t max_delay_ms = 200;
  // At most this many watches (directories); 0: only the kernel's limit
  // (fs.inotify.max_user_watches). Reaching either calls on_watch_limit.
  size_t max_watches = 0;
  // True for a relative path to skip: its changes are not reported and, for a
  // directory, it is neither watched nor descended into. Unset: nothing is ignored.
  // Called on the loop thread.
  std::function<bool(std::string_view rel_path, bool is_dir)> ignore = nullptr;
};

struct DirWatcherCallbacks {
  // Relative paths ('/'-separated, no leading '/') that changed, sorted, without
  // duplicates. A path may be a file, a symlink or a directory, and may no longer exist
  // (deleted or moved away; for a directory that means its whole subtree). A directory
  // that appeared (created or moved in) is reported together with everything in it.
  std::function<void(std::vector<std::string> paths)> on_changes = nullptr;
  // The kernel's event queue overflowed, so changes were lost: rescan everything. The
  // watcher has re-added watches for every directory it can see and goes on.
  std::function<void()> on_overflow = nullptr;
  // A directory could not be watched because the watch limit was reached (ENOSPC from
  // inotify_add_watch, or max_watches). Called once per watcher; directories past the
  // limit go unwatched, so the caller warns and falls back to periodic rescans.
  std::function<void()> on_watch_limit = nullptr;
  // The root was deleted, moved or unmounted. The watcher is closed when this runs.
  std::function<void(const Status& error)> on_error = nullptr;
};

// Watches a directory tree with one inotify watch per directory, adding watches for
// directories as they appear and dropping them for directories that go away.
// Symlinks are reported, never followed. Loop thread only (handle.h rule 7).
class DirWatcher final : public Handle {
 public:
  // Starts watching `root` (a directory) and every directory under it that `ignore`
  // does not skip. Existing files are not reported (the initial scan covers them).
  // The initial walk runs here, on the loop thread: O(directories).
  // Errors: kNotFound / kIoError for the root; kIoError if no inotify instance is left
  // (fs.inotify.max_user_instances).
  static Result<std::unique_ptr<DirWatcher>> Start(uv_loop_t* loop, std::string root,
                                                   DirWatcherOptions options,
                                                   DirWatcherCallbacks callbacks);
  ~DirWatcher() override;

  const std::string& root() const { return root_; }
  // Directories currently watched, the root included.
  size_t watch_count() const { return dir_of_wd_.size(); }
  bool watch_limit_reached() const { return limit_reached_; }
  uint64_t overflows() const { return overflows_; }

 private:
  struct Block;
  DirWatcher(Block* block, std::string root, DirWatcherOptions options,
             DirWatcherCallbacks callbacks);
  static void FreeBlock(uv_handle_t* h) noexcept;
  static void OnReadable(uv_poll_t* h, int status, int events) noexcept;
  void OnClose() override;

  void ReadEvents();
  void HandleEvent(int wd, uint32_t mask, std::string_view name);
  // Watches `rel` and the directories below it; with `report`, every entry found is
  // added to the pending batch.
  void AddTree(const std::string& rel, bool report);
  bool AddWatch(const std::string& rel);
  void RemoveTree(const std::string& rel);
  void ReachedLimit();
  bool Ignored(std::string_view rel, bool is_dir) const;
  std::string FullPath(const std::string& rel) const;
  void ScheduleFlush(bool now);
  void Flush();

  int fd_;
  std::string root_;
  DirWatcherOptions options_;
  std::shared_ptr<DirWatcherCallbacks> callbacks_;
  std::unique_ptr<Timer> timer_;
  std::vector<char> read_buffer_;
  std::unordered_map<int, std::string> dir_of_wd_;
  std::map<std::string, int> wd_of_dir_;  // sorted: a subtree is a contiguous range
  std::set<std::string> pending_;
  bool batch_open_ = false;
  uint64_t batch_started_ms_ = 0;
  bool overflow_pending_ = false;
  bool limit_reached_ = false;
  bool limit_pending_ = false;
  bool root_gone_ = false;
  uint64_t overflows_ = 0;
};

}  // namespace gossync::io
