// A small safe file-system layer rooted at data_dir (DESIGN.md section 4,
// issue 6): every operation on behalf of a peer is fd-relative, takes a
// canonical relative path (core::ValidatePath) and never follows a symlink
// in any component, so nothing a peer sends can reach outside the root.
//
// Resolution uses openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS); on kernels without openat2 (ENOSYS) it walks the
// components one by one with openat(O_NOFOLLOW | O_DIRECTORY). Either way a
// directory swapped for a symlink between two calls cannot be escaped: each
// call resolves afresh and refuses the symlink.
//
// Thread-safe: a RootDir is immutable after Open; its methods may run on any
// thread (they are meant for the work pool, never the loop thread).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "gossync/status.h"

namespace gossync::store {

// An owned file descriptor, closed on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(o.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// An errno turned into a Status naming the call and the path:
// "mkdir a/b: No such file or directory". ENOENT and ENOTDIR -> NotFound, EEXIST ->
// AlreadyExists, ELOOP/EXDEV (a symlink or an escape refused) ->
// PermissionDenied, everything else IoError.
Status ErrnoStatus(std::string_view what, std::string_view path, int err);

// A directory opened beneath the root plus the last component of a path:
// the pair every *at(2) call takes.
struct ParentDir {
  UniqueFd dir;      // O_RDONLY | O_DIRECTORY (fsync-able), never via a symlink
  std::string name;  // the last component of the path
};

class RootDir {
 public:
  enum class Resolver {
    kAuto,     // openat2 if the kernel has it, else kWalk (decided once)
    kOpenat2,  // openat2 only; ENOSYS is an error
    kWalk,     // component by component with openat(O_NOFOLLOW)
  };

  // Opens `dir` (an absolute or cwd-relative path of an existing directory)
  // once, O_PATH | O_DIRECTORY. The root itself may be reached through a
  // symlink (the operator chose it); nothing beneath it is.
  static Result<RootDir> Open(const std::string& dir, Resolver resolver = Resolver::kAuto);

  RootDir(RootDir&&) = default;
  RootDir& operator=(RootDir&&) = default;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  dev_t dev() const { return dev_; }
  // The resolver in use (kOpenat2 or kWalk once kAuto has been decided).
  Resolver resolver() const { return resolver_; }

  // Every `path` below is canonical (core::ValidatePath); an empty path means
  // the root itself where stated. REQUIRES nothing else: a bad path is an
  // InvalidArgument, never a crash.

  // The general open beneath the root: `flags` gets O_NOFOLLOW | O_CLOEXEC
  // added; a symlink in any component (the last included) fails, except that
  // O_PATH | O_NOFOLLOW returns an fd to a final symlink itself.
  Result<UniqueFd> OpenBeneath(std::string_view path, int flags, mode_t mode = 0) const;

  // A directory for reading (readdir) or as a dirfd. "" is the root.
  Result<UniqueFd> OpenDir(std::string_view path) const;
  // The parent directory of `path` and its last component. REQUIRES: path != "".
  Result<ParentDir> OpenParentDir(std::string_view path) const;

  // lstat(2): fstatat(parent, name, AT_SYMLINK_NOFOLLOW). "" is the root.
  Result<struct stat> Lstat(std::string_view path) const;
  // A regular file for reading. Fails (InvalidArgument) on anything else,
  // without blocking on a FIFO.
  Result<UniqueFd> OpenRead(std::string_view path) const;
  // The target of a symlink, verbatim.
  Result<std::string> ReadLink(std::string_view path) const;

  Status MakeDir(std::string_view path, mode_t mode) const;
  // Creates `path` and any missing parents (each `mode`); an existing
  // directory is fine, an existing non-directory (or symlink) is an error.
  Status MakeDirs(std::string_view path, mode_t mode) const;
  Status Unlink(std::string_view path) const;
  // Fails with IoError "Directory not empty" (errno ENOTEMPTY) if not empty.
  Status RemoveDir(std::string_view path) const;
  // renameat2 between the two parent directory fds. With `noreplace`, an
  // existing `to` is AlreadyExists.
  Status Rename(std::string_view from, std::string_view to, bool noreplace = false) const;
  // Permission bits of a file or directory; refuses a symlink (their modes
  // mean nothing on Linux) without following it.
  Status Chmod(std::string_view path, mode_t mode) const;
  // mtime (ns since the epoch) without following a symlink; atime untouched.
  Status SetMtime(std::string_view path, int64_t mtime_ns) const;
  // Creates a symlink at `path` whose text is `target` (never interpreted).
  Status Symlink(std::string_view target, std::string_view path) const;

 private:
  RootDir(UniqueFd fd, std::string path, dev_t dev, Resolver resolver)
      : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), resolver_(resolver) {}

  Result<UniqueFd> Resolve(std::string_view path, int flags, mode_t mode) const;
  Result<UniqueFd> ResolveWalk(std::string_view path, int flags, mode_t mode) const;

  UniqueFd fd_;
  std::string path_;
  dev_t dev_ = 0;
  Resolver resolver_ = Resolver::kAuto;
};

// Splits "a/b/c" into "a/b" and "c". Exposed for the scanner and tests.
std::pair<std::string_view, std::string_view> SplitParent(std::string_view path);

}  // namespace gossync::store
