#include "agent/store/atomic_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>

#include "agent/core/entry.h"
#include "agent/store/ignore.h"
#include "agent/store/scanner.h"

namespace gossync::store {
namespace {

constexpr std::string_view kStateTmp = "tmp";
constexpr std::string_view kProbeName = "rename-probe.gossync-tmp";

struct timespec NsToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1'000'000'000;
    ts.tv_sec -= 1;
  }
  return ts;
}

const char* KindWord(core::EntryKind k) {
  switch (k) {
    case core::EntryKind::kFile:
      return "file";
    case core::EntryKind::kDirectory:
      return "directory";
    case core::EntryKind::kSymlink:
      return "symlink";
  }
  return "entry";
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// What is at (dir, name) right now, without following a symlink.
struct Current {
  bool exists = false;
  bool special = false;  // a socket, FIFO or device: never ours to replace
  std::optional<LocalStat> stat;
};

Result<Current> CurrentAt(int dir, const std::string& name, std::string_view path) {
  Current c;
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return c;
    return ErrnoStatus("lstat", path, errno);
  }
  c.exists = true;
  c.stat = ToLocalStat(st);
  if (!c.stat) {
    c.special = true;
    return c;
  }
  if (c.stat->kind == core::EntryKind::kSymlink) {
    char buf[core::kMaxSymlinkTarget + 2];
    ssize_t n = ::readlinkat(dir, name.c_str(), buf, sizeof(buf));
    if (n < 0) return ErrnoStatus("readlink", path, errno);
    c.stat->target.assign(buf, static_cast<size_t>(std::min<ssize_t>(n, sizeof(buf))));
  }
  return c;
}

Status FsyncDir(int dir, std::string_view path) {
  if (::fsync(dir) != 0) return ErrnoStatus("fsync directory of", path, errno);
  return Status::Ok();
}

// Opens the destination's parent beneath the root, creating what is missing.
Result<ParentDir> PrepareParent(const RootDir& root, std::string_view path) {
  auto [parent, name] = SplitParent(path);
  if (!parent.empty()) GOSSYNC_RETURN_IF_ERROR(root.MakeDirs(parent, 0755));
  return root.OpenParentDir(path);
}

Status WriteFull(int fd, const uint8_t* p, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write temp file", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------- TempArea

Result<TempArea> TempArea::Open(const RootDir& root, const std::string& state_dir) {
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus("mkdir", state_dir, errno);
  }
  std::string tmp_path = state_dir + "/" + std::string(kStateTmp);
  if (::mkdir(tmp_path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus("mkdir", tmp_path, errno);
  }
  UniqueFd tmp(::open(tmp_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!tmp.valid()) return ErrnoStatus("open", tmp_path, errno);
  struct stat st;
  if (::fstat(tmp.get(), &st) != 0) return ErrnoStatus("stat", tmp_path, errno);
  if (st.st_dev == root.dev()) {
    // Same st_dev is necessary but not enough (two bind mounts of one file
    // system still give EXDEV), so try the one operation we rely on.
    std::string probe(kProbeName);
    UniqueFd pf(::openat(tmp.get(), probe.c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!pf.valid()) return ErrnoStatus("create", tmp_path + "/" + probe, errno);
    pf.Reset();
    int rc = ::renameat(tmp.get(), probe.c_str(), root.fd(), probe.c_str());
    int err = errno;
    if (rc == 0) {
      (void)::unlinkat(root.fd(), probe.c_str(), 0);
      return TempArea(std::move(tmp), tmp_path, false);
    }
    (void)::unlinkat(tmp.get(), probe.c_str(), 0);
    if (err != EXDEV) return ErrnoStatus("rename probe into", root.path(), err);
  }
  // Another file system: the temp dir goes inside data_dir, hidden by the
  // ignore rules, opened beneath the root like everything else there.
  std::string inside(kAgentTempDir);
  Status s = root.MakeDir(inside, 0700);
  if (!s.ok() && s.code() != Code::kAlreadyExists) return s;
  Result<UniqueFd> dir = root.OpenDir(inside);
  if (!dir.ok()) return dir.status();
  if (::fstat(dir->get(), &st) != 0) return ErrnoStatus("stat", inside, errno);
  // Someone else's directory would let its owner swap our temp files.
  if (st.st_uid != ::geteuid()) {
    return Status::PermissionDenied(root.path() + "/" + inside + " is owned by uid " +
                                    std::to_string(st.st_uid) + ", not by this agent");
  }
  if ((st.st_mode & 07777) != 0700 && ::fchmod(dir->get(), 0700) != 0) {
    return ErrnoStatus("chmod", inside, errno);
  }
  return TempArea(std::move(dir).value(), root.path() + "/" + inside, true);
}

Result<size_t> TempArea::CollectGarbage(int64_t now_ns, int64_t max_age_ns, size_t max_idle,
                                        const std::function<bool(const std::string&)>& in_use)
    const {
  int fd = ::openat(dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path_, errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return ErrnoStatus("opendir", path_, errno);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  std::vector<std::string> stale;
  std::vector<std::pair<int64_t, std::string>> idle;  // (mtime, name)
  while (struct dirent* de = ::readdir(d)) {
    std::string_view name = de->d_name;
    if (!EndsWith(name, kAgentTempSuffix)) continue;
    struct stat st;
    if (::fstatat(dir_.get(), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) continue;
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    if (mtime < now_ns - max_age_ns) {
      stale.emplace_back(name);
    } else if (!in_use || !in_use(std::string(name))) {
      idle.emplace_back(mtime, name);
    }
  }
  if (idle.size() > max_idle) {
    std::sort(idle.begin(), idle.end());
    for (size_t i = 0; i < idle.size() - max_idle; ++i) stale.push_back(std::move(idle[i].second));
  }
  size_t removed = 0;
  for (const std::string& name : stale) {
    if (::unlinkat(dir_.get(), name.c_str(), 0) == 0) ++removed;
  }
  return removed;
}

// ------------------------------------------------------------- PendingFile

std::string PendingFile::TempName(std::string_view path, const core::Hash256& expected_hash) {
  core::Sha256Hasher h;
  h.Update(path);
  h.Update(std::string_view("\0", 1));
  h.Update(std::span<const uint8_t>(expected_hash));
  return core::ToHex(h.Finish()) + std::string(kAgentTempSuffix);
}

Result<PendingFile> PendingFile::Open(const TempArea& area, std::string_view path,
                                      const core::Hash256& expected_hash, uint64_t expected_size) {
  std::string name = TempName(path, expected_hash);
  UniqueFd dir(::fcntl(area.dir_fd(), F_DUPFD_CLOEXEC, 0));
  if (!dir.valid()) return Status::FromErrno("dup temp dir", errno);
  UniqueFd file(::openat(dir.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file.valid()) return ErrnoStatus("open temp file", name, errno);
  struct stat st;
  if (::fstat(file.get(), &st) != 0) return ErrnoStatus("stat temp file", name, errno);
  // A hard link planted under our name would make us write through to
  // another file.
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    return Status::PermissionDenied("temp file " + name + " is not a private regular file");
  }
  return PendingFile(std::move(dir), std::move(file), std::move(name), expected_hash,
                     expected_size);
}

Status PendingFile::CheckOpen() const {
  if (!file_.valid())
    return Status::Aborted("temp file " + name_ + " already committed or discarded");
  return Status::Ok();
}

Result<uint64_t> PendingFile::CurrentSize() const {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  struct stat st;
  if (::fstat(file_.get(), &st) != 0) return ErrnoStatus("stat temp file", name_, errno);
  return static_cast<uint64_t>(st.st_size);
}

Result<std::vector<bool>> PendingFile::ValidBlocks(std::span<const core::Hash256> expected_blocks,
                                                   size_t block_size) const {
  if (block_size == 0 || block_size > kMaxBlockSize) {
    return Status::InvalidArgument("block size " + std::to_string(block_size) + " out of range");
  }
  uint64_t want = (expected_size_ + block_size - 1) / block_size;
  if (expected_blocks.size() != want) {
    return Status::InvalidArgument(std::to_string(expected_blocks.size()) + " block hashes for " +
                                   std::to_string(expected_size_) + " bytes, expected " +
                                   std::to_string(want));
  }
  Result<uint64_t> size = CurrentSize();
  if (!size.ok()) return size.status();
  std::vector<bool> valid(expected_blocks.size(), false);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[block_size]);
  for (size_t i = 0; i < expected_blocks.size(); ++i) {
    uint64_t off = static_cast<uint64_t>(i) * block_size;
    size_t len = static_cast<size_t>(std::min<uint64_t>(block_size, expected_size_ - off));
    if (off + len > *size) break;
    size_t got = 0;
    while (got < len) {
      ssize_t n = ::pread(file_.get(), buf.get() + got, len - got, static_cast<off_t>(off + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("read temp file", name_, errno);
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    if (got != len) break;
    valid[i] = core::Sha256(std::span<const uint8_t>(buf.get(), len)) == expected_blocks[i];
  }
  return valid;
}

Result<PendingFile::Prefix> PendingFile::ValidPrefix(std::span<const core::Hash256> expected_blocks,
                                                     size_t block_size) const {
  Result<std::vector<bool>> v = ValidBlocks(expected_blocks, block_size);
  if (!v.ok()) return v.status();
  Prefix p;
  while (p.blocks < v->size() && (*v)[p.blocks]) ++p.blocks;
  p.bytes = std::min<uint64_t>(static_cast<uint64_t>(p.blocks) * block_size, expected_size_);
  return p;
}

Status PendingFile::WriteAt(uint64_t offset, std::span<const uint8_t> bytes) {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  if (offset > expected_size_ || bytes.size() > expected_size_ - offset) {
    return Status::LimitExceeded("write of " + std::to_string(bytes.size()) + " bytes at " +
                                 std::to_string(offset) + " past the expected size " +
                                 std::to_string(expected_size_));
  }
  return WriteFull(file_.get(), bytes.data(), bytes.size(), offset);
}

Status PendingFile::CopyFrom(int src_fd, uint64_t src_offset, uint64_t offset, uint64_t len) {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  if (offset > expected_size_ || len > expected_size_ - offset) {
    return Status::LimitExceeded("copy past the expected size " + std::to_string(expected_size_));
  }
  loff_t in = static_cast<loff_t>(src_offset), out = static_cast<loff_t>(offset);
  uint64_t left = len;
  while (left > 0) {
    ssize_t n = ::copy_file_range(src_fd, &in, file_.get(), &out, left, 0);
    if (n > 0) {
      left -= static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) return Status::Corruption("copy: source is shorter than expected");
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
      return Status::FromErrno("copy_file_range", errno);
    }
    // Fallback: plain reads and writes.
    uint8_t buf[64 * 1024];
    while (left > 0) {
      ssize_t r = ::pread(src_fd, buf, std::min<uint64_t>(left, sizeof(buf)), in);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno("read copy source", errno);
      if (r == 0) return Status::Corruption("copy: source is shorter than expected");
      GOSSYNC_RETURN_IF_ERROR(
          WriteFull(file_.get(), buf, static_cast<size_t>(r), static_cast<uint64_t>(out)));
      in += r;
      out += r;
      left -= static_cast<uint64_t>(r);
    }
  }
  return Status::Ok();
}

Status PendingFile::Commit(const RootDir& root, std::string_view path, uint32_t mode,
                           int64_t mtime_ns, const Precondition& precondition) {
  GOSSYNC_RETURN_IF_ERROR(Prepare(path, mode, mtime_ns));
  GOSSYNC_RETURN_IF_ERROR(SyncData(path));
  return Publish(root, path, precondition, nullptr);
}

Status PendingFile::Prepare(std::string_view path, uint32_t mode, int64_t mtime_ns) {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  Result<uint64_t> size = CurrentSize();
  if (!size.ok()) return size.status();
  if (*size < expected_size_) {
    return Status::Unavailable("commit " + std::string(path) + ": have " + std::to_string(*size) +
                               " of " + std::to_string(expected_size_) + " bytes");
  }
  if (*size > expected_size_ && ::ftruncate(file_.get(), static_cast<off_t>(expected_size_)) != 0) {
    return ErrnoStatus("truncate temp file for", path, errno);
  }
  // Never rename unverified bytes: hash what is in the file now (the page
  // cache holds exactly what fsync will write).
  Result<FileHashes> got = HashFd(file_.get(), expected_size_, 0);
  if (!got.ok()) return got.status().Prefixed("verify " + std::string(path));
  if (got->file != expected_hash_) {
    return Status::Corruption("commit " + std::string(path) + ": content hash " +
                              core::ToHex(got->file) + " is not the expected " +
                              core::ToHex(expected_hash_));
  }
  if (::fchmod(file_.get(), mode & core::kModeMask) != 0) {
    return ErrnoStatus("chmod temp file for", path, errno);
  }
  struct timespec ts[2] = {{0, UTIME_OMIT}, NsToTimespec(mtime_ns)};
  if (::futimens(file_.get(), ts) != 0)
    return ErrnoStatus("set mtime of temp file for", path, errno);
  // Start writing the data back now, so that when a batch of files is
  // fsynced one after another, the first fsync's journal commit carries the
  // block allocations of all of them and the others find little to do.
  (void)::sync_file_range(file_.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  prepared_ = true;
  return Status::Ok();
}

Status PendingFile::SyncData(std::string_view path, bool synced_by_syncfs) {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  if (!prepared_) return Status::Internal("sync of an unprepared temp file for " + std::string(path));
  if (!synced_by_syncfs && ::fsync(file_.get()) != 0) {
    return ErrnoStatus("fsync temp file for", path, errno);
  }
  synced_ = true;
  return Status::Ok();
}

Status PendingFile::Publish(const RootDir& root, std::string_view path,
                            const Precondition& precondition, UniqueFd* parent_out) {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  if (!synced_) return Status::Internal("publish of an unsynced temp file for " + std::string(path));
  Result<ParentDir> parent = PrepareParent(root, path);
  if (!parent.ok()) return parent.status();
  Result<Current> cur = CurrentAt(parent->dir.get(), parent->name, path);
  if (!cur.ok()) return cur.status();
  if (cur->special)
    return Status::Aborted("commit " + std::string(path) + ": a special file is there");
  if (precondition) GOSSYNC_RETURN_IF_ERROR(precondition(cur->stat));
  if (cur->exists && cur->stat->kind != core::EntryKind::kFile) {
    return Status::Aborted("commit " + std::string(path) + ": a " + KindWord(cur->stat->kind) +
                           " is there, not a file");
  }
  // Absent at the check: RENAME_NOREPLACE, so a file created since then is
  // not clobbered but reported.
  if (::renameat2(dir_.get(), name_.c_str(), parent->dir.get(), parent->name.c_str(),
                  cur->exists ? 0 : RENAME_NOREPLACE) != 0) {
    return ErrnoStatus("rename into", path, errno);
  }
  file_.Reset();
  dir_.Reset();
  if (parent_out) {
    *parent_out = std::move(parent->dir);
    return Status::Ok();
  }
  return FsyncDir(parent->dir.get(), path);
}

Status SyncFileSystem(const TempArea& area) {
  if (::syncfs(area.dir_fd()) != 0) return Status::FromErrno("syncfs", errno);
  return Status::Ok();
}

Status PendingFile::Discard() {
  GOSSYNC_RETURN_IF_ERROR(CheckOpen());
  file_.Reset();
  if (::unlinkat(dir_.get(), name_.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus("unlink temp file", name_, errno);
  }
  return Status::Ok();
}

// ------------------------------------------------------ the other entries

Status WriteSymlinkAtomically(const RootDir& root, const TempArea& area, std::string_view path,
                              std::string_view target, int64_t mtime_ns,
                              const Precondition& precondition) {
  if (target.empty() || target.size() > core::kMaxSymlinkTarget ||
      target.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("symlink " + std::string(path) +
                                   ": target is empty, too long or has a NUL");
  }
  core::Sha256Hasher h;
  h.Update(std::string_view("symlink\0", 8));
  h.Update(path);
  h.Update(std::string_view("\0", 1));
  h.Update(target);
  std::string tmp = core::ToHex(h.Finish()) + std::string(kAgentTempSuffix);
  int tdir = area.dir_fd();
  if (::unlinkat(tdir, tmp.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus("unlink stale temp", tmp, errno);
  }
  std::string t(target);
  if (::symlinkat(t.c_str(), tdir, tmp.c_str()) != 0)
    return ErrnoStatus("symlink temp", tmp, errno);
  auto cleanup = [&] { (void)::unlinkat(tdir, tmp.c_str(), 0); };
  if (mtime_ns != 0) {
    struct timespec ts[2] = {{0, UTIME_OMIT}, NsToTimespec(mtime_ns)};
    if (::utimensat(tdir, tmp.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
      Status s = ErrnoStatus("set mtime of temp symlink for", path, errno);
      cleanup();
      return s;
    }
  }
  Result<ParentDir> parent = PrepareParent(root, path);
  if (!parent.ok()) {
    cleanup();
    return parent.status();
  }
  Result<Current> cur = CurrentAt(parent->dir.get(), parent->name, path);
  Status s = cur.ok() ? Status::Ok() : cur.status();
  if (s.ok() && cur->special)
    s = Status::Aborted("symlink " + std::string(path) + ": a special file is there");
  if (s.ok() && precondition) s = precondition(cur->stat);
  if (s.ok() && cur->exists && cur->stat->kind != core::EntryKind::kSymlink) {
    s = Status::Aborted("symlink " + std::string(path) + ": a " + KindWord(cur->stat->kind) +
                        " is there, not a symlink");
  }
  if (s.ok() && ::renameat2(tdir, tmp.c_str(), parent->dir.get(), parent->name.c_str(),
                            cur->exists ? 0 : RENAME_NOREPLACE) != 0) {
    s = ErrnoStatus("rename into", path, errno);
  }
  if (!s.ok()) {
    cleanup();
    return s;
  }
  return FsyncDir(parent->dir.get(), path);
}

Status MakeDirectory(const RootDir& root, std::string_view path, uint32_t mode) {
  Result<ParentDir> parent = PrepareParent(root, path);
  if (!parent.ok()) return parent.status();
  if (::mkdirat(parent->dir.get(), parent->name.c_str(), 0700) != 0) {
    if (errno != EEXIST) return ErrnoStatus("mkdir", path, errno);
    struct stat st;
    if (::fstatat(parent->dir.get(), parent->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus("lstat", path, errno);
    }
    if (!S_ISDIR(st.st_mode)) {
      return Status::AlreadyExists("mkdir " + std::string(path) +
                                   ": exists and is not a directory");
    }
  }
  // mkdir applies the umask; the entry's mode is exact. Created 0700 above so
  // that nobody can slip in before the chmod.
  GOSSYNC_RETURN_IF_ERROR(root.Chmod(path, mode & core::kModeMask));
  return FsyncDir(parent->dir.get(), path);
}

Result<RemoveOutcome> RemoveEntry(const RootDir& root, std::string_view path,
                                  const Precondition& precondition) {
  Result<ParentDir> parent = root.OpenParentDir(path);
  if (!parent.ok()) {
    if (parent.status().code() == Code::kNotFound) return RemoveOutcome::kAlreadyGone;
    return parent.status();
  }
  Result<Current> cur = CurrentAt(parent->dir.get(), parent->name, path);
  if (!cur.ok()) return cur.status();
  if (!cur->exists) return RemoveOutcome::kAlreadyGone;
  if (cur->special)
    return Status::Aborted("remove " + std::string(path) + ": a special file is there");
  if (precondition) GOSSYNC_RETURN_IF_ERROR(precondition(cur->stat));
  bool dir = cur->stat->kind == core::EntryKind::kDirectory;
  if (::unlinkat(parent->dir.get(), parent->name.c_str(), dir ? AT_REMOVEDIR : 0) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST) return RemoveOutcome::kNotEmpty;
    if (errno == ENOENT) return RemoveOutcome::kAlreadyGone;
    return ErrnoStatus(dir ? "rmdir" : "unlink", path, errno);
  }
  GOSSYNC_RETURN_IF_ERROR(FsyncDir(parent->dir.get(), path));
  return RemoveOutcome::kRemoved;
}

}  // namespace gossync::store
