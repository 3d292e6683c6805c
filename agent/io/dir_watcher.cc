#include "agent/io/dir_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/io/log.h"
#include "agent/io/uv_status.h"

namespace gossync::io {
namespace {

// Everything that changes an entry's content, metadata or existence, for the entries
// of one directory. IN_ONLYDIR and IN_DONT_FOLLOW: a watch is only ever put on a real
// directory, never through a symlink. IN_EXCL_UNLINK: no events for files that were
// unlinked but are still open.
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB |
                           IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                           IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;

// Room for many events per read(2); each is at most sizeof(inotify_event) + NAME_MAX + 1.
constexpr size_t kReadBuffer = 64 * 1024;
// Reads per readable callback before yielding to the rest of the loop.
constexpr int kMaxReadsPerWakeup = 16;

std::string Join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string s = dir;
  s += '/';
  s.append(name);
  return s;
}

}  // namespace

// The poll handle and the inotify descriptor it watches, freed together in the close
// callback: the descriptor must stay open until libuv has stopped polling it.
struct DirWatcher::Block {
  uv_poll_t poll;
  int fd = -1;
};

void DirWatcher::FreeBlock(uv_handle_t* h) noexcept {
  NotifyClosed(h);
  auto* block = reinterpret_cast<Block*>(h);
  if (block->fd >= 0) close(block->fd);
  delete block;
}

Result<std::unique_ptr<DirWatcher>> DirWatcher::Start(uv_loop_t* loop, std::string root,
                                                      DirWatcherOptions options,
                                                      DirWatcherCallbacks callbacks) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  struct stat st {};
  if (stat(root.c_str(), &st) != 0) return Status::FromErrno("watch " + root, errno);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("watch " + root + ": not a directory");

  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Status::FromErrno("inotify_init1 (fs.inotify.max_user_instances?)", errno);
  auto* block = new Block;
  block->fd = fd;
  int rc = uv_poll_init(loop, &block->poll, fd);
  if (rc < 0) {
    close(fd);
    delete block;
    return UvError("poll inotify", rc);
  }
  std::unique_ptr<DirWatcher> w(
      new DirWatcher(block, std::move(root), std::move(options), std::move(callbacks)));
  if (!w->AddWatch("")) {
    // The root itself cannot be watched: nothing to fall back to.
    return Status::IoError("watch " + w->root_ + ": cannot add an inotify watch" +
                           (w->limit_reached_ ? " (watch limit reached)" : ""));
  }
  w->AddTree("", /*report=*/false);
  rc = uv_poll_start(&block->poll, UV_READABLE, &DirWatcher::OnReadable);
  if (rc < 0) return UvError("poll inotify", rc);
  if (w->limit_pending_) w->ScheduleFlush(/*now=*/true);
  Log().debug("watching {} ({} directories)", w->root_, w->watch_count());
  return w;
}

DirWatcher::DirWatcher(Block* block, std::string root, DirWatcherOptions options,
                       DirWatcherCallbacks callbacks)
    : Handle(reinterpret_cast<uv_handle_t*>(&block->poll), &DirWatcher::FreeBlock),
      fd_(block->fd),
      root_(std::move(root)),
      options_(std::move(options)),
      callbacks_(std::make_shared<DirWatcherCallbacks>(std::move(callbacks))),
      timer_(Timer::Create(block->poll.loop)),
      read_buffer_(kReadBuffer) {}

DirWatcher::~DirWatcher() { Close(); }

void DirWatcher::OnClose() {
  timer_->Close();
  // The descriptor closes with the poll handle (FreeBlock); its watches go with it.
}

std::string DirWatcher::FullPath(const std::string& rel) const {
  return rel.empty() ? root_ : root_ + "/" + rel;
}

bool DirWatcher::Ignored(std::string_view rel, bool is_dir) const {
  return options_.ignore && options_.ignore(rel, is_dir);
}

void DirWatcher::ReachedLimit() {
  if (limit_reached_) return;
  limit_reached_ = true;
  limit_pending_ = true;
  Log().debug("watch limit reached under {} at {} watches", root_, watch_count());
}

bool DirWatcher::AddWatch(const std::string& rel) {
  if (options_.max_watches != 0 && watch_count() >= options_.max_watches &&
      wd_of_dir_.find(rel) == wd_of_dir_.end()) {
    ReachedLimit();
    return false;
  }
  int wd = inotify_add_watch(fd_, FullPath(rel).c_str(), kMask);
  if (wd < 0) {
    if (errno == ENOSPC) {
      ReachedLimit();
    } else if (errno != ENOENT && errno != ENOTDIR) {
      // Gone meanwhile (ENOENT, ENOTDIR) is normal; EACCES and the like are not, but
      // there is nothing better to do than to skip the directory.
      Log().debug("inotify_add_watch {}: {}", FullPath(rel), std::strerror(errno));
    }
    return false;
  }
  // The same inode may already be watched under another name (a directory moved
  // while its old watch was still registered): the kernel returns the same wd.
  auto [it, inserted] = dir_of_wd_.try_emplace(wd, rel);
  if (!inserted && it->second != rel) {
    wd_of_dir_.erase(it->second);
    it->second = rel;
  }
  wd_of_dir_[rel] = wd;
  return true;
}

void DirWatcher::AddTree(const std::string& top, bool report) {
  // Iterative, so a deep tree cannot overflow the stack. The watch on a directory is
  // added before it is read: whatever appears after the read is seen as an event,
  // whatever appeared before is found by the read.
  std::vector<std::string> stack{top};
  bool first = true;
  while (!stack.empty()) {
    std::string rel = std::move(stack.back());
    stack.pop_back();
    if (!first || !rel.empty()) AddWatch(rel);  // the root's watch exists already
    first = false;
    DIR* dir = opendir(FullPath(rel).c_str());
    if (dir == nullptr) continue;  // gone or unreadable: its parent's events tell
    while (dirent* e = readdir(dir)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string child = Join(rel, name);
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir = lstat(FullPath(child).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      }
      if (Ignored(child, is_dir)) continue;
      if (report) pending_.insert(child);
      if (is_dir) stack.push_back(std::move(child));
    }
    closedir(dir);
  }
}

void DirWatcher::RemoveTree(const std::string& rel) {
  auto it = wd_of_dir_.lower_bound(rel);
  const std::string prefix = rel + "/";
  while (it != wd_of_dir_.end() &&
         (it->first == rel || it->first.compare(0, prefix.size(), prefix) == 0)) {
    // The kernel may have dropped it already (deleted directory): EINVAL is fine.
    inotify_rm_watch(fd_, it->second);
    dir_of_wd_.erase(it->second);
    it = wd_of_dir_.erase(it);
  }
}

void DirWatcher::OnReadable(uv_poll_t* h, int status, int) noexcept {
  DirWatcher* self = OpenOwner<DirWatcher>(h);
  if (self == nullptr) return;
  if (status < 0) {
    Log().debug("inotify poll {}: {}", self->root_, uv_strerror(status));
    return;
  }
  self->ReadEvents();
}

void DirWatcher::ReadEvents() {
  // No user callback runs in here: everything goes into the batch, and Flush (on the
  // timer) reports it. So the maps cannot change under this loop.
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    ssize_t n = read(fd_, read_buffer_.data(), read_buffer_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) Log().debug("read inotify {}: {}", root_, std::strerror(errno));
      break;
    }
    if (n == 0) break;
    const char* p = read_buffer_.data();
    const char* end = p + n;
    while (p + sizeof(inotify_event) <= end) {
      inotify_event ev;
      std::memcpy(&ev, p, sizeof(ev));
      const char* name = p + sizeof(inotify_event);
      if (name + ev.len > end) break;  // never happens: the kernel writes whole events
      HandleEvent(ev.wd, ev.mask, std::string_view(name, strnlen(name, ev.len)));
      p = name + ev.len;
    }
  }
  ScheduleFlush(/*now=*/overflow_pending_ || limit_pending_ || root_gone_);
}

void DirWatcher::HandleEvent(int wd, uint32_t mask, std::string_view name) {
  if (mask & IN_Q_OVERFLOW) {
    ++overflows_;
    overflow_pending_ = true;
    // Events were lost, directory creations among them: watch whatever exists now.
    AddTree("", /*report=*/false);
    return;
  }
  auto it = dir_of_wd_.find(wd);
  if (it == dir_of_wd_.end()) return;  // a watch removed earlier; its events are stale
  const std::string dir = it->second;
  if (mask & IN_IGNORED) {
    // The kernel dropped the watch: the directory was deleted or unmounted.
    wd_of_dir_.erase(dir);
    dir_of_wd_.erase(it);
    if (dir.empty()) root_gone_ = true;
    return;
  }
  if (name.empty()) {
    // An event on the watched directory itself. Its own entry is reported through its
    // parent's watch; only the root has no parent.
    if (dir.empty() && (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))) root_gone_ = true;
    return;
  }
  std::string rel = Join(dir, name);
  const bool is_dir = (mask & IN_ISDIR) != 0;
  if (Ignored(rel, is_dir)) return;
  pending_.insert(rel);
  if (!is_dir) return;
  if (mask & (IN_CREATE | IN_MOVED_TO)) {
    // Its contents may have been created before the watch: AddTree reports them.
    AddTree(rel, /*report=*/true);
  } else if (mask & (IN_MOVED_FROM | IN_DELETE)) {
    RemoveTree(rel);
  }
}

void DirWatcher::ScheduleFlush(bool now) {
  if (!is_open()) return;
  if (pending_.empty() && !overflow_pending_ && !limit_pending_ && !root_gone_) return;
  const uint64_t t = uv_now(loop());
  if (!batch_open_) {
    batch_open_ = true;
    batch_started_ms_ = t;
  }
  uint64_t due = std::min(t + options_.debounce_ms, batch_started_ms_ + options_.max_delay_ms);
  if (now || due < t) due = t;
  // Start re-arms: each change pushes the quiet deadline out, up to max_delay.
  timer_->Start(due - t, [this] { Flush(); });
}

void DirWatcher::Flush() {
  batch_open_ = false;
  std::shared_ptr<DirWatcherCallbacks> cbs = callbacks_;
  std::weak_ptr<void> alive = this->alive();
  if (root_gone_) {
    Close();
    if (cbs->on_error) {
      cbs->on_error(
          Status::NotFound("watched directory " + root_ + " was removed, moved or unmounted"));
    }
    return;
  }
  if (limit_pending_) {
    limit_pending_ = false;
    if (cbs->on_watch_limit) cbs->on_watch_limit();
    if (alive.expired() || !is_open()) return;
  }
  if (overflow_pending_) {
    overflow_pending_ = false;
    // A full rescan covers whatever was pending.
    pending_.clear();
    if (cbs->on_overflow) cbs->on_overflow();
    return;
  }
  if (pending_.empty()) return;
  std::vector<std::string> paths(pending_.begin(), pending_.end());
  pending_.clear();
  if (cbs->on_changes) cbs->on_changes(std::move(paths));
}

}  // namespace gossync::io
