#include "agent/store/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "agent/core/entry.h"
#include "agent/core/path.h"

namespace gossync::store {
namespace {

int64_t ToNs(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string p;
  p.reserve(dir.size() + 1 + name.size());
  if (!dir.empty()) {
    p.append(dir);
    p += '/';
  }
  p.append(name);
  return p;
}

// A name for the log: printable ASCII kept, everything else as \xNN.
std::string Printable(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

void NoteSkip(WalkResult* r, const WalkOptions& o, std::string_view why, std::string_view path) {
  if (r->skipped_examples.size() < o.max_listed_skips) {
    r->skipped_examples.push_back(std::string(why) + ": " + Printable(path));
  }
}

// Lists a directory's names (without "." and ".."). Takes ownership of `fd`.
Status ReadNames(UniqueFd fd, std::string_view path, std::vector<std::string>* names) {
  DIR* d = ::fdopendir(fd.get());
  if (d == nullptr) return ErrnoStatus("opendir", path, errno);
  fd.Release();  // now owned by `d`
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  while (true) {
    errno = 0;
    struct dirent* de = ::readdir(d);
    if (de == nullptr) {
      if (errno != 0) return ErrnoStatus("readdir", path, errno);
      return Status::Ok();
    }
    const char* n = de->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    names->emplace_back(n);
  }
}

bool SameContentKey(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
         ToNs(a.st_mtim) == ToNs(b.st_mtim) && ToNs(a.st_ctim) == ToNs(b.st_ctim);
}

// Per-thread read buffer: hashing 20,000 small files must not allocate a
// MiB each time.
uint8_t* ThreadBuffer(size_t bytes) {
  thread_local std::unique_ptr<uint8_t[]> buf;
  thread_local size_t cap = 0;
  if (cap < bytes) {
    buf.reset(new uint8_t[bytes]);
    cap = bytes;
  }
  return buf.get();
}

// Feeds bytes to the whole-file hasher and, if asked, to per-block hashers.
class TwoLevelHasher {
 public:
  explicit TwoLevelHasher(size_t block_size) : block_size_(block_size) {}

  void Update(const uint8_t* p, size_t n) {
    file_.Update({p, n});
    if (block_size_ == 0) return;
    while (n > 0) {
      size_t take = std::min(n, block_size_ - in_block_);
      block_.Update({p, take});
      in_block_ += take;
      p += take;
      n -= take;
      if (in_block_ == block_size_) {
        blocks_.push_back(block_.Finish());
        in_block_ = 0;
      }
    }
  }

  FileHashes Finish() {
    FileHashes out;
    if (block_size_ != 0 && in_block_ > 0) blocks_.push_back(block_.Finish());
    out.file = file_.Finish();
    out.blocks = std::move(blocks_);
    return out;
  }

 private:
  size_t block_size_;
  size_t in_block_ = 0;
  core::Sha256Hasher file_;
  core::Sha256Hasher block_;
  std::vector<core::Hash256> blocks_;
};

// Reads [0, size) of `fd` into `h`. Returns the bytes actually read (a file
// that shrank gives fewer) and stops at `size` even if the file grew.
Result<uint64_t> ReadInto(int fd, uint64_t size, const HashOptions& o, TwoLevelHasher* h) {
  size_t buf_bytes = std::max<size_t>(o.buffer_bytes, 4096);
  if (o.method == ReadMethod::kMmap && size > 0) {
    // mmap in windows so that a huge file does not take a huge mapping. A
    // file truncated under us would SIGBUS on access; the caller compared
    // size before and after, but the window is real, so mmap is only used
    // when asked (the bench measures it; pread is the default).
    size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    size_t window = std::max(page, buf_bytes / page * page);
    uint64_t off = 0;
    while (off < size) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(window, size - off));
      void* m =
          ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, static_cast<off_t>(off));
      if (m == MAP_FAILED) return Status::FromErrno("mmap", errno);
      h->Update(static_cast<const uint8_t*>(m), len);
      ::munmap(m, len);
      off += len;
      if (o.after_chunk) o.after_chunk(off);
    }
    return off;
  }
  uint8_t* buf = ThreadBuffer(buf_bytes);
  uint64_t off = 0;
  while (off < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf_bytes, size - off));
    ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read", errno);
    }
    if (n == 0) break;  // shrank
    h->Update(buf, static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
    if (o.after_chunk) o.after_chunk(off);
  }
  return off;
}

Result<FileHashes> HashPath(const RootDir& root, std::string_view path, const LocalStat& expected,
                            size_t block_size, const HashOptions& o) {
  Result<UniqueFd> fd = root.OpenRead(path);
  if (!fd.ok()) return fd.status();
  struct stat before;
  if (::fstat(fd->get(), &before) != 0) return ErrnoStatus("stat", path, errno);
  if (static_cast<uint64_t>(before.st_size) != expected.size ||
      static_cast<uint64_t>(before.st_ino) != expected.ino ||
      ToNs(before.st_mtim) != expected.mtime_ns) {
    return Status::Aborted("hash " + std::string(path) + ": changed since it was scanned");
  }
  (void)::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  TwoLevelHasher h(block_size);
  uint64_t size = static_cast<uint64_t>(before.st_size);
  Result<uint64_t> got = ReadInto(fd->get(), size, o, &h);
  if (!got.ok()) return got.status().Prefixed("hash " + std::string(path));
  // One more byte past the size means the file grew while we read.
  uint8_t extra;
  ssize_t more = ::pread(fd->get(), &extra, 1, static_cast<off_t>(size));
  struct stat after;
  if (::fstat(fd->get(), &after) != 0) return ErrnoStatus("stat", path, errno);
  if (*got != size || more != 0 || !SameContentKey(before, after)) {
    return Status::Aborted("hash " + std::string(path) + ": modified while being hashed");
  }
  return h.Finish();
}

}  // namespace

std::optional<LocalStat> ToLocalStat(const struct stat& st) {
  LocalStat ls;
  if (S_ISREG(st.st_mode)) {
    ls.kind = core::EntryKind::kFile;
  } else if (S_ISDIR(st.st_mode)) {
    ls.kind = core::EntryKind::kDirectory;
  } else if (S_ISLNK(st.st_mode)) {
    ls.kind = core::EntryKind::kSymlink;
  } else {
    return std::nullopt;
  }
  ls.mode = st.st_mode & core::kModeMask;
  ls.size = static_cast<uint64_t>(st.st_size);
  ls.mtime_ns = ToNs(st.st_mtim);
  ls.ctime_ns = ToNs(st.st_ctim);
  ls.ino = static_cast<uint64_t>(st.st_ino);
  ls.dev = static_cast<uint64_t>(st.st_dev);
  return ls;
}

Result<WalkResult> Walk(const RootDir& root, const IgnoreMatcher& ignore,
                        const WalkOptions& options) {
  WalkResult r;
  std::vector<std::string> stack;  // directories still to list; "" is the root
  stack.emplace_back();
  std::vector<std::string> names;
  bool first = true;
  while (!stack.empty()) {
    std::string dir = std::move(stack.back());
    stack.pop_back();
    // Each directory is opened afresh from the root fd (openat2 beneath the
    // root, no symlinks): a directory swapped for a symlink since it was
    // listed is refused, not followed. Only one directory fd is open at once,
    // however deep the tree.
    if (options.before_open_dir) options.before_open_dir(dir);
    Result<UniqueFd> dfd = root.OpenDir(dir);
    if (!dfd.ok()) {
      if (first) return dfd.status();
      r.errors.push_back({dir, dfd.status()});
      continue;
    }
    struct stat dst;
    if (::fstat(dfd->get(), &dst) != 0) {
      r.errors.push_back({dir, ErrnoStatus("stat", dir, errno)});
      continue;
    }
    if (!first && !options.cross_devices && dst.st_dev != root.dev()) {
      ++r.other_device;
      continue;
    }
    // A second fd for the *at calls: fdopendir takes ownership of the first.
    UniqueFd at_fd(::dup(dfd->get()));
    if (!at_fd.valid()) return ErrnoStatus("dup", dir, errno);
    names.clear();
    Status s = ReadNames(std::move(dfd).value(), dir, &names);
    if (!s.ok()) {
      if (first) return s;
      r.errors.push_back({dir, s});
      continue;
    }
    first = false;
    for (const std::string& name : names) {
      std::string path = JoinPath(dir, name);
      // Validating the component alone (plus the total length) is the same
      // as validating the whole path: the parent was already valid.
      if (path.size() > core::kMaxPathBytes || !core::ValidatePath(name).ok()) {
        ++r.bad_names;
        NoteSkip(&r, options, "invalid name", path);
        continue;
      }
      struct stat st;
      if (::fstatat(at_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
          ++r.vanished;
          continue;
        }
        r.errors.push_back({path, ErrnoStatus("lstat", path, errno)});
        continue;
      }
      std::optional<LocalStat> ls = ToLocalStat(st);
      if (!ls) {
        ++r.special;
        NoteSkip(&r, options, "special file", path);
        continue;
      }
      bool is_dir = ls->kind == core::EntryKind::kDirectory;
      if (ignore.IgnoredEntry(path, is_dir)) {
        ++r.ignored;
        continue;
      }
      Observation obs;
      if (ls->kind == core::EntryKind::kSymlink) {
        char buf[core::kMaxSymlinkTarget + 2];
        ssize_t n = ::readlinkat(at_fd.get(), name.c_str(), buf, sizeof(buf));
        if (n < 0) {
          if (errno == ENOENT || errno == EINVAL) {  // gone, or replaced by a non-link
            ++r.vanished;
            continue;
          }
          r.errors.push_back({path, ErrnoStatus("readlink", path, errno)});
          continue;
        }
        if (static_cast<size_t>(n) > core::kMaxSymlinkTarget) {
          ++r.bad_names;
          NoteSkip(&r, options, "symlink target too long", path);
          continue;
        }
        ls->target.assign(buf, static_cast<size_t>(n));
        obs.hash = core::Sha256(std::string_view(ls->target));
      }
      if (r.entries.size() >= options.max_entries) {
        return Status::LimitExceeded("walk: more than " + std::to_string(options.max_entries) +
                                     " entries");
      }
      if (is_dir) stack.push_back(path);
      obs.path = std::move(path);
      obs.stat = std::move(ls);
      r.entries.push_back(std::move(obs));
    }
  }
  std::sort(r.entries.begin(), r.entries.end(),
            [](const Observation& a, const Observation& b) { return a.path < b.path; });
  std::sort(r.errors.begin(), r.errors.end(),
            [](const WalkError& a, const WalkError& b) { return a.path < b.path; });
  return r;
}

Result<std::optional<LocalStat>> LstatOne(const RootDir& root, std::string_view path) {
  Result<struct stat> st = root.Lstat(path);
  if (!st.ok()) {
    Code c = st.status().code();
    // NotFound: gone, or a parent is a file now. PermissionDenied from the
    // resolver: a parent is a symlink, so `path` is not an entry of our tree.
    if (c == Code::kNotFound || c == Code::kPermissionDenied) {
      return std::optional<LocalStat>();
    }
    return st.status();
  }
  std::optional<LocalStat> ls = ToLocalStat(*st);
  if (ls && ls->kind == core::EntryKind::kSymlink) {
    Result<std::string> t = root.ReadLink(path);
    if (!t.ok()) {
      if (t.status().code() == Code::kNotFound) return std::optional<LocalStat>();
      return t.status();
    }
    ls->target = std::move(t).value();
  }
  return ls;
}

Result<core::Hash256> HashFile(const RootDir& root, std::string_view path,
                               const LocalStat& expected, const HashOptions& options) {
  Result<FileHashes> h = HashPath(root, path, expected, 0, options);
  if (!h.ok()) return h.status();
  return h->file;
}

Result<FileHashes> HashFileBlocks(const RootDir& root, std::string_view path,
                                  const LocalStat& expected, size_t block_size,
                                  const HashOptions& options) {
  if (block_size == 0 || block_size > kMaxBlockSize) {
    return Status::InvalidArgument("block size " + std::to_string(block_size) + " out of range");
  }
  return HashPath(root, path, expected, block_size, options);
}

Result<FileHashes> HashFd(int fd, uint64_t size, size_t block_size, const HashOptions& options) {
  if (block_size > kMaxBlockSize) {
    return Status::InvalidArgument("block size " + std::to_string(block_size) + " out of range");
  }
  TwoLevelHasher h(block_size);
  HashOptions o = options;
  o.method = ReadMethod::kPread;
  Result<uint64_t> got = ReadInto(fd, size, o, &h);
  if (!got.ok()) return got.status();
  if (*got != size) {
    return Status::Corruption("short read: " + std::to_string(*got) + " of " +
                              std::to_string(size) + " bytes");
  }
  return h.Finish();
}

}  // namespace gossync::store
