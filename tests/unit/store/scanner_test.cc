#include "agent/store/scanner.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "agent/core/hash.h"
#include "agent/core/path.h"
#include "tests/unit/store/fs_testing.h"

namespace gossync::store {
namespace {

using core::EntryKind;
using testing::MakeDirs;
using testing::MakeSymlink;
using testing::TempDir;
using testing::WriteFile;

RootDir OpenRoot(const std::string& dir) {
  Result<RootDir> root = RootDir::Open(dir);
  REQUIRE(root.ok());
  return std::move(root).value();
}

WalkResult DoWalk(const RootDir& root, const IgnoreMatcher& ignore = {},
                  const WalkOptions& options = {}) {
  Result<WalkResult> r = Walk(root, ignore, options);
  INFO((r.ok() ? std::string("ok") : r.status().ToString()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::map<std::string, const Observation*> ByPath(const WalkResult& r) {
  std::map<std::string, const Observation*> m;
  for (const auto& o : r.entries) m[o.path] = &o;
  return m;
}

std::vector<std::string> Paths(const WalkResult& r) {
  std::vector<std::string> v;
  for (const auto& o : r.entries) v.push_back(o.path);
  return v;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_CASE("Walk: nested directories, files and every kind of symlink, sorted", "[scanner]") {
  TempDir outer;
  std::string d = outer / "root";
  MakeDirs(d + "/a/b/c");
  MakeDirs(d + "/a-z");
  MakeDirs(outer / "outside");
  WriteFile(outer / "outside/secret", "s");
  WriteFile(d + "/top.txt", "top");
  WriteFile(d + "/a/b/c/deep.bin", "deep");
  WriteFile(d + "/a-z/f", "");
  ::chmod((d + "/top.txt").c_str(), 0640);
  MakeSymlink("top.txt", d + "/to_file");
  MakeSymlink("a/b", d + "/to_dir");
  MakeSymlink("nowhere/at/all", d + "/dangling");
  MakeSymlink(outer / "outside", d + "/absolute");
  RootDir root = OpenRoot(d);

  WalkResult r = DoWalk(root);
  CHECK(Paths(r) == std::vector<std::string>{"a", "a-z", "a-z/f", "a/b", "a/b/c", "a/b/c/deep.bin",
                                             "absolute", "dangling", "to_dir", "to_file",
                                             "top.txt"});
  CHECK(r.errors.empty());
  CHECK(r.special == 0);
  CHECK(r.bad_names == 0);
  auto m = ByPath(r);
  const LocalStat& top = *m["top.txt"]->stat;
  CHECK(top.kind == EntryKind::kFile);
  CHECK(top.size == 3);
  CHECK(top.mode == 0640);
  struct stat st;
  REQUIRE(::lstat((d + "/top.txt").c_str(), &st) == 0);
  CHECK(top.ino == st.st_ino);
  CHECK(top.mtime_ns == st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec);
  CHECK(core::IsZero(m["top.txt"]->hash));  // hashing is separate
  CHECK(m["a/b"]->stat->kind == EntryKind::kDirectory);
  CHECK(core::IsZero(m["a/b"]->hash));
  for (const auto& [path, target] :
       std::map<std::string, std::string>{{"to_file", "top.txt"},
                                          {"to_dir", "a/b"},
                                          {"dangling", "nowhere/at/all"},
                                          {"absolute", outer / "outside"}}) {
    INFO(path);
    const Observation& o = *m[path];
    CHECK(o.stat->kind == EntryKind::kSymlink);
    CHECK(o.stat->target == target);
    CHECK(o.stat->size == target.size());
    CHECK(o.hash == core::Sha256(std::string_view(target)));
  }
  // Never followed: nothing from outside or through to_dir.
  for (const auto& p : Paths(r)) {
    CHECK(p.rfind("absolute/", 0) != 0);
    CHECK(p.rfind("to_dir/", 0) != 0);
  }
}

TEST_CASE("Walk: ignored paths are skipped and ignored directories not descended", "[scanner]") {
  TempDir t;
  MakeDirs(t / "cache/deep/er");
  MakeDirs(t / "src");
  MakeDirs(t / ".gossync-tmp");
  WriteFile(t / "cache/deep/er/x", "x");
  WriteFile(t / "src/a.c", "a");
  WriteFile(t / "src/a.swp", "a");
  WriteFile(t / "src/keep.swp", "a");
  WriteFile(t / ".gossync-tmp/partial", "p");
  WriteFile(t / "src/0123.gossync-tmp", "p");
  RootDir root = OpenRoot(t.path());
  Result<IgnoreMatcher> ig = IgnoreMatcher::Create({"cache/", "*.swp", "!keep.swp"});
  REQUIRE(ig.ok());
  int opened_cache = 0;
  WalkOptions o;
  o.before_open_dir = [&](std::string_view dir) { opened_cache += dir.rfind("cache", 0) == 0; };
  WalkResult r = DoWalk(root, *ig, o);
  CHECK(Paths(r) == std::vector<std::string>{"src", "src/a.c", "src/keep.swp"});
  CHECK(r.ignored == 4);  // cache, src/a.swp, .gossync-tmp, src/0123.gossync-tmp
  CHECK(opened_cache == 0);
}

TEST_CASE("Walk: sockets and FIFOs are skipped and counted", "[scanner]") {
  TempDir t;
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0600) == 0);
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string sp = t / "sock";
  REQUIRE(sp.size() < sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
  REQUIRE(::bind(s, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0);
  ::close(s);
  WriteFile(t / "file", "f");
  RootDir root = OpenRoot(t.path());
  WalkResult r = DoWalk(root);
  CHECK(Paths(r) == std::vector<std::string>{"file"});
  CHECK(r.special == 2);
  CHECK(r.skipped_examples.size() == 2);
  CHECK(r.errors.empty());
}

TEST_CASE("Walk: names that are not valid paths are counted, never fatal", "[scanner]") {
  TempDir t;
  MakeDirs(t / "d");
  WriteFile(t / "d/bad\xff.txt", "x");    // not UTF-8
  WriteFile(t / "back\\slash", "x");      // rejected by ValidatePath
  WriteFile(t / "caf\xc3\xa9.txt", "x");  // fine
  // A path past 4096 bytes made of valid components: the deepest one is cut.
  // Made fd-relative: the absolute path is longer than PATH_MAX.
  std::string deep = "d";
  while (deep.size() < core::kMaxPathBytes - 200) deep += "/" + std::string(200, 'n');
  REQUIRE(deep.size() <= core::kMaxPathBytes);
  {
    RootDir maker = OpenRoot(t.path());
    REQUIRE(maker.MakeDirs(deep, 0755).ok());
    Result<ParentDir> p = maker.OpenParentDir(deep);
    REQUIRE(p.ok());
    int fd = ::openat(p->dir.get(), (std::string(200, 'n') + "/" + std::string(250, 'f')).c_str(),
                      O_CREAT | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    ::close(fd);
  }
  RootDir root = OpenRoot(t.path());
  WalkResult r = DoWalk(root);
  CHECK(r.bad_names == 3);
  auto m = ByPath(r);
  CHECK(m.count("caf\xc3\xa9.txt") == 1);
  CHECK(m.count(deep) == 1);
  bool listed = false;
  for (const auto& ex : r.skipped_examples)
    listed |= ex.find("d/bad\\xff.txt") != std::string::npos;
  CHECK(listed);
  for (const auto& o : r.entries) CHECK(core::ValidatePath(o.path).ok());
}

TEST_CASE("Walk: a directory removed or swapped for a symlink mid-walk is an error entry",
          "[scanner]") {
  TempDir outer;
  std::string d = outer / "root";
  MakeDirs(d + "/gone/sub");
  MakeDirs(d + "/swapped");
  MakeDirs(d + "/stays");
  MakeDirs(outer / "outside");
  WriteFile(d + "/gone/sub/f", "f");
  WriteFile(d + "/swapped/f", "f");
  WriteFile(d + "/stays/f", "f");
  WriteFile(outer / "outside/secret", "s");
  RootDir root = OpenRoot(d);
  WalkOptions o;
  o.before_open_dir = [&](std::string_view dir) {
    if (dir == "gone") std::filesystem::remove_all(d + "/gone");
    if (dir == "swapped") {
      std::filesystem::remove_all(d + "/swapped");
      MakeSymlink(outer / "outside", d + "/swapped");
    }
  };
  WalkResult r = DoWalk(root, {}, o);
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].path == "gone");
  CHECK(r.errors[0].status.code() == Code::kNotFound);
  CHECK(r.errors[1].path == "swapped");
  CHECK(r.errors[1].status.code() == Code::kPermissionDenied);
  auto m = ByPath(r);
  CHECK(m.count("stays/f") == 1);
  CHECK(m.count("swapped/secret") == 0);
  CHECK(m.count("gone/sub") == 0);
}

TEST_CASE("Walk: an unreadable directory is an error entry, not a failed walk", "[scanner]") {
  if (::geteuid() == 0) {
    WARN(
        "running as root, which bypasses EACCES: the unreadable-directory case is covered by "
        "the removed-mid-walk test instead");
    return;
  }
  TempDir t;
  MakeDirs(t / "locked");
  WriteFile(t / "locked/f", "f");
  WriteFile(t / "open", "o");
  ::chmod((t / "locked").c_str(), 0);
  RootDir root = OpenRoot(t.path());
  WalkResult r = DoWalk(root);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].path == "locked");
  CHECK(ByPath(r).count("open") == 1);
}

// Mounts a tmpfs inside the tree, in a child process with its own mount
// namespace so that nothing leaks to the host. Exit codes: 0 pass, 77 no
// privilege to mount (skip), anything else a failure.
int MountWalkChild(const std::string& d, bool cross) {
  if (::unshare(CLONE_NEWNS) != 0) return 77;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
  if (::mount("tmpfs", (d + "/mnt").c_str(), "tmpfs", 0, "size=1m") != 0) return 77;
  WriteFile(d + "/mnt/inner", "i");
  Result<RootDir> root = RootDir::Open(d);
  if (!root.ok()) return 1;
  WalkOptions o;
  o.cross_devices = cross;
  Result<WalkResult> r = Walk(*root, IgnoreMatcher(), o);
  if (!r.ok()) return 2;
  bool has_mnt = false, has_inner = false;
  for (const auto& e : r->entries) {
    has_mnt |= e.path == "mnt";
    has_inner |= e.path == "mnt/inner";
  }
  if (!has_mnt) return 3;
  if (has_inner != cross) return 4;
  if (r->other_device != (cross ? 0u : 1u)) return 5;
  return 0;
}

TEST_CASE("Walk: a mount point is recorded but not entered unless asked", "[scanner]") {
  for (bool cross : {false, true}) {
    INFO("cross_devices " << cross);
    TempDir t;
    MakeDirs(t / "mnt");
    WriteFile(t / "top", "t");
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(MountWalkChild(t.path(), cross));
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
      WARN("cannot mount a tmpfs in a private mount namespace here: skipped");
      return;
    }
    CHECK(WEXITSTATUS(status) == 0);
  }
}

TEST_CASE("Walk: a missing root fails and a limit on entries is enforced", "[scanner]") {
  TempDir t;
  for (int i = 0; i < 10; ++i) WriteFile(t / ("f" + std::to_string(i)), "x");
  RootDir root = OpenRoot(t.path());
  WalkOptions o;
  o.max_entries = 5;
  CHECK(Walk(root, {}, o).status().code() == Code::kLimitExceeded);
  o.max_entries = 10;
  CHECK(Walk(root, {}, o).ok());
}

TEST_CASE("LstatOne: files, symlinks, absences and refusals", "[scanner]") {
  TempDir outer;
  std::string d = outer / "root";
  MakeDirs(d + "/dir");
  MakeDirs(outer / "outside");
  WriteFile(outer / "outside/secret", "s");
  WriteFile(d + "/dir/f", "hello");
  MakeSymlink("dir/f", d + "/l");
  MakeSymlink(outer / "outside", d + "/out");
  REQUIRE(::mkfifo((d + "/fifo").c_str(), 0600) == 0);
  RootDir root = OpenRoot(d);

  auto f = LstatOne(root, "dir/f");
  REQUIRE(f.ok());
  REQUIRE(f->has_value());
  CHECK((*f)->kind == EntryKind::kFile);
  CHECK((*f)->size == 5);
  auto l = LstatOne(root, "l");
  REQUIRE(l.ok());
  REQUIRE(l->has_value());
  CHECK((*l)->kind == EntryKind::kSymlink);
  CHECK((*l)->target == "dir/f");
  for (const char* absent : {"missing", "dir/missing", "dir/f/x", "out/secret", "fifo"}) {
    INFO(absent);
    auto a = LstatOne(root, absent);
    REQUIRE(a.ok());
    CHECK_FALSE(a->has_value());
  }
  CHECK(LstatOne(root, "../root/dir/f").status().code() == Code::kInvalidArgument);
  auto dir = LstatOne(root, "dir");
  REQUIRE(dir.ok());
  CHECK((*dir)->kind == EntryKind::kDirectory);
}

TEST_CASE("HashFile: content hashes and block hashes in one pass, both read methods", "[scanner]") {
  TempDir t;
  RootDir root = OpenRoot(t.path());
  const uint32_t seed = 20240601;
  INFO("seed " << seed);
  for (size_t size : {size_t{0}, size_t{1}, size_t{131071}, size_t{131072}, size_t{131073},
                      size_t{1} << 20, (size_t{1} << 20) + 1, size_t{3} * 1024 * 1024 + 12345}) {
    for (ReadMethod method : {ReadMethod::kPread, ReadMethod::kMmap}) {
      INFO("size " << size << " method " << static_cast<int>(method));
      std::string content = RandomBytes(size, seed + static_cast<uint32_t>(size));
      WriteFile(t / "f", content);
      auto ls = LstatOne(root, "f");
      REQUIRE(ls.ok());
      HashOptions o;
      o.method = method;
      Result<core::Hash256> h = HashFile(root, "f", **ls, o);
      REQUIRE(h.ok());
      CHECK(*h == core::Sha256(std::string_view(content)));
      Result<FileHashes> b = HashFileBlocks(root, "f", **ls, kDefaultBlockSize, o);
      REQUIRE(b.ok());
      CHECK(b->file == *h);
      size_t nblocks = (size + kDefaultBlockSize - 1) / kDefaultBlockSize;
      REQUIRE(b->blocks.size() == nblocks);
      for (size_t i = 0; i < nblocks; ++i) {
        CHECK(b->blocks[i] == core::Sha256(std::string_view(content).substr(i * kDefaultBlockSize,
                                                                            kDefaultBlockSize)));
      }
    }
  }
  // A buffer that is not a multiple of the block size still cuts blocks right.
  std::string content = RandomBytes(1'000'000, seed);
  WriteFile(t / "g", content);
  auto ls = LstatOne(root, "g");
  HashOptions odd;
  odd.buffer_bytes = 100'003;
  Result<FileHashes> b = HashFileBlocks(root, "g", **ls, 65536, odd);
  REQUIRE(b.ok());
  REQUIRE(b->blocks.size() == 16);
  CHECK(b->blocks[15] == core::Sha256(std::string_view(content).substr(15 * 65536)));
  CHECK(HashFileBlocks(root, "g", **ls, 0).status().code() == Code::kInvalidArgument);
  CHECK(HashFileBlocks(root, "g", **ls, kMaxBlockSize + 1).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("HashFile: a file that changed since the scan or changes while hashed is Aborted",
          "[scanner]") {
  TempDir t;
  RootDir root = OpenRoot(t.path());
  std::string content = RandomBytes(4 << 20, 7);
  WriteFile(t / "f", content);
  auto ls = LstatOne(root, "f");
  REQUIRE(ls.ok());
  const LocalStat scanned = **ls;

  SECTION("changed before hashing") {
    WriteFile(t / "f", content + "more");
    CHECK(HashFile(root, "f", scanned).status().code() == Code::kAborted);
  }
  SECTION("rewritten in place, same size, mtime restored") {
    HashOptions o;
    bool done = false;
    o.after_chunk = [&](uint64_t) {
      if (done) return;
      done = true;
      int fd = ::open((t / "f").c_str(), O_WRONLY);
      REQUIRE(::pwrite(fd, "XXXX", 4, 0) == 4);
      struct timespec ts[2] = {
          {0, UTIME_OMIT}, {scanned.mtime_ns / 1'000'000'000, scanned.mtime_ns % 1'000'000'000}};
      REQUIRE(::futimens(fd, ts) == 0);
      ::close(fd);
    };
    CHECK(HashFile(root, "f", scanned, o).status().code() == Code::kAborted);
  }
  SECTION("truncated while hashed") {
    HashOptions o;
    o.after_chunk = [&](uint64_t off) {
      if (off == 1 << 20) REQUIRE(::truncate((t / "f").c_str(), 1000) == 0);
    };
    CHECK(HashFile(root, "f", scanned, o).status().code() == Code::kAborted);
  }
  SECTION("grown while hashed") {
    HashOptions o;
    o.after_chunk = [&](uint64_t off) {
      if (off == 1 << 20) {
        int fd = ::open((t / "f").c_str(), O_WRONLY | O_APPEND);
        REQUIRE(::write(fd, "tail", 4) == 4);
        ::close(fd);
      }
    };
    CHECK(HashFileBlocks(root, "f", scanned, kDefaultBlockSize, o).status().code() ==
          Code::kAborted);
  }
  SECTION("replaced by another file (new inode) while hashed") {
    HashOptions o;
    o.after_chunk = [&](uint64_t off) {
      if (off == 1 << 20) {
        WriteFile(t / "f2", content);
        std::filesystem::rename(t / "f2", t / "f");
      }
    };
    // The open fd still reads the old inode, but unlinking it changed its
    // ctime: the hash is refused (conservative), and the next scan sees the
    // new inode anyway.
    CHECK(HashFile(root, "f", scanned, o).status().code() == Code::kAborted);
    auto now = LstatOne(root, "f");
    CHECK_FALSE((*now)->SameFile(scanned));
  }
  SECTION("unchanged: hashes fine") {
    Result<core::Hash256> h = HashFile(root, "f", scanned);
    REQUIRE(h.ok());
    CHECK(*h == core::Sha256(std::string_view(content)));
  }
}

TEST_CASE("HashFile: refuses what is not a regular file beneath the root", "[scanner]") {
  TempDir outer;
  std::string d = outer / "root";
  MakeDirs(d);
  WriteFile(outer / "secret", "s");
  MakeSymlink(outer / "secret", d + "/l");
  RootDir root = OpenRoot(d);
  LocalStat fake;
  CHECK_FALSE(HashFile(root, "l", fake).ok());
  CHECK(HashFile(root, "missing", fake).status().code() == Code::kNotFound);
}

}  // namespace
}  // namespace gossync::store
