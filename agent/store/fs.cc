#include "agent/store/fs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agent/core/entry.h"
#include "agent/core/path.h"

namespace gossync::store {
namespace {

constexpr uint64_t kResolveFlags = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// openat2 returns EAGAIN when a concurrent rename could have let a lookup
// escape; the kernel asks us to retry. Bounded, so a hostile writer racing
// renames cannot make us spin forever.
constexpr int kOpenat2Retries = 16;

int SysOpenat2(int dirfd, const char* path, int flags, mode_t mode) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags);
  // openat2 rejects a mode without O_CREAT/O_TMPFILE (EINVAL).
  how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
  how.resolve = kResolveFlags;
  return static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

// 0 unknown, 1 openat2 works, 2 use the walk. Decided once per process:
// the kernel does not change under us.
std::atomic<int> g_openat2_state{0};

bool KernelHasOpenat2(int probe_dir) {
  int state = g_openat2_state.load(std::memory_order_relaxed);
  if (state == 0) {
    int fd = SysOpenat2(probe_dir, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    // EPERM: an older container seccomp profile denies unknown syscalls that way;
    // opening "." as O_PATH cannot legitimately fail with it.
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
      state = 2;
    } else {
      state = 1;
      if (fd >= 0) ::close(fd);
    }
    g_openat2_state.store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

Status CheckPath(std::string_view path) {
  Status s = core::ValidatePath(path);
  if (!s.ok()) return s.Prefixed("path '" + std::string(path) + "'");
  return s;
}

}  // namespace

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status ErrnoStatus(std::string_view what, std::string_view path, int err) {
  std::string m(what);
  m += ' ';
  m += path.empty() ? std::string_view(".") : path;
  m += ": ";
  switch (err) {
    case ENOENT:
    case ENOTDIR:  // a parent is not a directory: no such entry
      return Status::NotFound(m + std::strerror(err));
    case EEXIST:
      return Status::AlreadyExists(m + std::strerror(err));
    case ELOOP:
    case EXDEV:
      // RESOLVE_NO_SYMLINKS / O_NOFOLLOW / RESOLVE_BENEATH refused the lookup.
      return Status::PermissionDenied(m + "refused: a component is a symlink or leaves the root (" +
                                      std::strerror(err) + ")");
    default:
      return Status::IoError(m + std::strerror(err));
  }
}

std::pair<std::string_view, std::string_view> SplitParent(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

Result<RootDir> RootDir::Open(const std::string& dir, Resolver resolver) {
  int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open root", dir, errno);
  UniqueFd ufd(fd);
  struct stat st;
  if (::fstat(ufd.get(), &st) != 0) return ErrnoStatus("stat root", dir, errno);
  if (resolver == Resolver::kAuto) {
    resolver = KernelHasOpenat2(ufd.get()) ? Resolver::kOpenat2 : Resolver::kWalk;
  }
  return RootDir(std::move(ufd), dir, st.st_dev, resolver);
}

Result<UniqueFd> RootDir::Resolve(std::string_view path, int flags, mode_t mode) const {
  flags |= O_NOFOLLOW | O_CLOEXEC;
  if (path.empty()) {
    // The root itself: "." relative to the root fd is the root, no lookup.
    int fd = ::openat(fd_.get(), ".", flags & ~(O_CREAT | O_EXCL | O_TRUNC), 0);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    return UniqueFd(fd);
  }
  if (resolver_ == Resolver::kWalk) return ResolveWalk(path, flags, mode);
  std::string p(path);
  for (int attempt = 0;; ++attempt) {
    int fd = SysOpenat2(fd_.get(), p.c_str(), flags, mode);
    if (fd >= 0) return UniqueFd(fd);
    int err = errno;
    if (err == EAGAIN && attempt < kOpenat2Retries) continue;
    if (err == ENOTDIR && (flags & O_DIRECTORY)) {
      // O_DIRECTORY | O_NOFOLLOW on a final symlink says ENOTDIR; say what
      // it really is, so that a refused symlink reads as one.
      int lfd = SysOpenat2(fd_.get(), p.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
      struct stat st;
      if (lfd >= 0 && ::fstat(lfd, &st) == 0 && S_ISLNK(st.st_mode)) err = ELOOP;
      if (lfd >= 0) ::close(lfd);
    }
    return ErrnoStatus("open", path, err);
  }
}

// The fallback for kernels before 5.6: each intermediate component is opened
// O_PATH | O_NOFOLLOW relative to the previous one and checked to be a real
// directory, so a symlink anywhere is refused just as RESOLVE_NO_SYMLINKS
// would. The components are canonical (no "." or ".."), so the walk cannot
// climb out of the root either.
Result<UniqueFd> RootDir::ResolveWalk(std::string_view path, int flags, mode_t mode) const {
  UniqueFd cur(::openat(fd_.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return ErrnoStatus("open", "", errno);
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string comp(
        path.substr(start, slash == std::string_view::npos ? path.npos : slash - start));
    if (slash == std::string_view::npos) {
      int fd = ::openat(cur.get(), comp.c_str(), flags, mode);
      if (fd < 0) {
        int err = errno;
        struct stat st;
        if (err == ENOTDIR && ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode)) {
          err = ELOOP;
        }
        return ErrnoStatus("open", path, err);
      }
      return UniqueFd(fd);
    }
    int fd = ::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      // O_PATH | O_NOFOLLOW | O_DIRECTORY on a symlink says ENOTDIR; name it.
      struct stat st;
      if (err == ENOTDIR && ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        err = ELOOP;
      }
      return ErrnoStatus("open", path.substr(0, slash), err);
    }
    UniqueFd next(fd);
    struct stat st;
    if (::fstat(next.get(), &st) != 0) return ErrnoStatus("stat", path.substr(0, slash), errno);
    if (!S_ISDIR(st.st_mode)) {
      return ErrnoStatus("open", path.substr(0, slash), S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR);
    }
    cur = std::move(next);
    start = slash + 1;
  }
}

Result<UniqueFd> RootDir::OpenBeneath(std::string_view path, int flags, mode_t mode) const {
  GOSSYNC_RETURN_IF_ERROR(CheckPath(path));
  return Resolve(path, flags, mode);
}

Result<UniqueFd> RootDir::OpenDir(std::string_view path) const {
  if (!path.empty()) GOSSYNC_RETURN_IF_ERROR(CheckPath(path));
  return Resolve(path, O_RDONLY | O_DIRECTORY, 0);
}

Result<ParentDir> RootDir::OpenParentDir(std::string_view path) const {
  GOSSYNC_RETURN_IF_ERROR(CheckPath(path));
  auto [parent, name] = SplitParent(path);
  Result<UniqueFd> dir = Resolve(parent, O_RDONLY | O_DIRECTORY, 0);
  if (!dir.ok()) return dir.status().Prefixed(std::string(path));
  return ParentDir{std::move(dir).value(), std::string(name)};
}

Result<struct stat> RootDir::Lstat(std::string_view path) const {
  struct stat st;
  if (path.empty()) {
    if (::fstat(fd_.get(), &st) != 0) return ErrnoStatus("lstat", path, errno);
    return st;
  }
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  if (::fstatat(p->dir.get(), p->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus("lstat", path, errno);
  }
  return st;
}

Result<UniqueFd> RootDir::OpenRead(std::string_view path) const {
  // O_NONBLOCK so that a FIFO planted at `path` does not hang the worker;
  // it has no effect on a regular file.
  Result<UniqueFd> fd = OpenBeneath(path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoStatus("stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("open " + std::string(path) + ": not a regular file");
  }
  int fl = ::fcntl(fd->get(), F_GETFL);
  if (fl >= 0) (void)::fcntl(fd->get(), F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

Result<std::string> RootDir::ReadLink(std::string_view path) const {
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  char buf[core::kMaxSymlinkTarget + 2];
  ssize_t n = ::readlinkat(p->dir.get(), p->name.c_str(), buf, sizeof(buf));
  if (n < 0) return ErrnoStatus("readlink", path, errno);
  if (static_cast<size_t>(n) > core::kMaxSymlinkTarget) {
    return Status::LimitExceeded("readlink " + std::string(path) + ": target longer than " +
                                 std::to_string(core::kMaxSymlinkTarget) + " bytes");
  }
  return std::string(buf, static_cast<size_t>(n));
}

Status RootDir::MakeDir(std::string_view path, mode_t mode) const {
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  if (::mkdirat(p->dir.get(), p->name.c_str(), mode) != 0) return ErrnoStatus("mkdir", path, errno);
  return Status::Ok();
}

Status RootDir::MakeDirs(std::string_view path, mode_t mode) const {
  if (path.empty()) return Status::Ok();
  GOSSYNC_RETURN_IF_ERROR(CheckPath(path));
  // A component walk by construction: mkdirat then openat(O_NOFOLLOW |
  // O_DIRECTORY) of the same name, so an existing symlink is never entered.
  UniqueFd cur(::openat(fd_.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return ErrnoStatus("open", "", errno);
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    size_t end = slash == std::string_view::npos ? path.size() : slash;
    std::string comp(path.substr(start, end - start));
    std::string_view prefix = path.substr(0, end);
    if (::mkdirat(cur.get(), comp.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus("mkdir", prefix, errno);
    }
    int fd = ::openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      struct stat st;
      if (::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) return ErrnoStatus("mkdir", prefix, ELOOP);
        return Status::AlreadyExists("mkdir " + std::string(prefix) +
                                     ": exists and is not a directory");
      }
      return ErrnoStatus("mkdir", prefix, err);
    }
    cur.Reset(fd);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

Status RootDir::Unlink(std::string_view path) const {
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  if (::unlinkat(p->dir.get(), p->name.c_str(), 0) != 0) return ErrnoStatus("unlink", path, errno);
  return Status::Ok();
}

Status RootDir::RemoveDir(std::string_view path) const {
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  if (::unlinkat(p->dir.get(), p->name.c_str(), AT_REMOVEDIR) != 0) {
    return ErrnoStatus("rmdir", path, errno);
  }
  return Status::Ok();
}

Status RootDir::Rename(std::string_view from, std::string_view to, bool noreplace) const {
  Result<ParentDir> a = OpenParentDir(from);
  if (!a.ok()) return a.status();
  Result<ParentDir> b = OpenParentDir(to);
  if (!b.ok()) return b.status();
  if (::renameat2(a->dir.get(), a->name.c_str(), b->dir.get(), b->name.c_str(),
                  noreplace ? RENAME_NOREPLACE : 0) != 0) {
    return ErrnoStatus("rename " + std::string(from) + " ->", to, errno);
  }
  return Status::Ok();
}

Status RootDir::Chmod(std::string_view path, mode_t mode) const {
  // Pin the inode with an O_PATH | O_NOFOLLOW fd, refuse a symlink, then
  // chmod the pinned inode through /proc/self/fd (the only way to chmod an
  // O_PATH fd; fchmodat(AT_SYMLINK_NOFOLLOW) in glibc does the same).
  Result<UniqueFd> fd = OpenBeneath(path, O_PATH, 0);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoStatus("stat", path, errno);
  if (S_ISLNK(st.st_mode)) return ErrnoStatus("chmod", path, ELOOP);
  char proc[64];
  std::snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd->get());
  if (::chmod(proc, mode & core::kModeMask) == 0) return Status::Ok();
  if (errno != ENOENT) return ErrnoStatus("chmod", path, errno);
  // No /proc: open the (non-symlink) file for real and fchmod it.
  Result<UniqueFd> rfd = OpenBeneath(path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
  if (!rfd.ok()) return rfd.status();
  if (::fchmod(rfd->get(), mode & core::kModeMask) != 0) return ErrnoStatus("chmod", path, errno);
  return Status::Ok();
}

Status RootDir::SetMtime(std::string_view path, int64_t mtime_ns) const {
  struct timespec ts[2];
  ts[0].tv_sec = 0;
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_sec = static_cast<time_t>(mtime_ns / 1000000000);
  ts[1].tv_nsec = static_cast<long>(mtime_ns % 1000000000);
  if (ts[1].tv_nsec < 0) {
    ts[1].tv_nsec += 1000000000;
    ts[1].tv_sec -= 1;
  }
  if (path.empty()) {
    Result<UniqueFd> dir = Resolve(path, O_RDONLY | O_DIRECTORY, 0);
    if (!dir.ok()) return dir.status();
    if (::futimens(dir->get(), ts) == 0) return Status::Ok();
    return ErrnoStatus("utimensat", path, errno);
  }
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  if (::utimensat(p->dir.get(), p->name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus("utimensat", path, errno);
  }
  return Status::Ok();
}

Status RootDir::Symlink(std::string_view target, std::string_view path) const {
  if (target.empty() || target.size() > core::kMaxSymlinkTarget ||
      target.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("symlink " + std::string(path) +
                                   ": target is empty, too long or has a NUL");
  }
  Result<ParentDir> p = OpenParentDir(path);
  if (!p.ok()) return p.status();
  std::string t(target);
  if (::symlinkat(t.c_str(), p->dir.get(), p->name.c_str()) != 0) {
    return ErrnoStatus("symlink", path, errno);
  }
  return Status::Ok();
}

}  // namespace gossync::store
