#include "agent/store/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>

#include "tests/unit/store/fs_testing.h"

namespace gossync::store {
namespace {

using testing::Exists;
using testing::MakeDirs;
using testing::MakeSymlink;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

// Everything observable about a tree: to show that an operation touched
// nothing there.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st;
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    std::string v = std::to_string(st.st_mode) + "/" + std::to_string(st.st_size) + "/" +
                    std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
                    "/" + std::to_string(st.st_nlink);
    if (S_ISREG(st.st_mode)) v += "/" + ReadFile(e.path());
    out[e.path().string()] = v;
  }
  return out;
}

RootDir OpenRoot(const std::string& dir, RootDir::Resolver r) {
  Result<RootDir> root = RootDir::Open(dir, r);
  REQUIRE(root.ok());
  return std::move(root).value();
}

// Every mutating and reading operation on `path`; each must fail.
void ExpectAllRefused(const RootDir& root, const std::string& path) {
  INFO("path " << path);
  CHECK_FALSE(root.Lstat(path).ok());
  CHECK_FALSE(root.OpenRead(path).ok());
  CHECK_FALSE(root.OpenBeneath(path, O_RDONLY).ok());
  CHECK_FALSE(root.OpenBeneath(path, O_WRONLY | O_CREAT | O_TRUNC, 0644).ok());
  CHECK_FALSE(root.OpenBeneath(path, O_PATH).ok());
  CHECK_FALSE(root.OpenDir(path).ok());
  CHECK_FALSE(root.OpenParentDir(path).ok());
  CHECK_FALSE(root.ReadLink(path).ok());
  CHECK_FALSE(root.MakeDir(path + "/x", 0755).ok());
  CHECK_FALSE(root.MakeDirs(path + "/y/z", 0755).ok());
  CHECK_FALSE(root.Unlink(path).ok());
  CHECK_FALSE(root.RemoveDir(path).ok());
  CHECK_FALSE(root.Rename("inside.txt", path).ok());
  CHECK_FALSE(root.Rename(path, "stolen").ok());
  CHECK_FALSE(root.Chmod(path, 0777).ok());
  CHECK_FALSE(root.SetMtime(path, 0).ok());
  CHECK_FALSE(root.Symlink("/", path + "/link").ok());
}

TEST_CASE("RootDir: the kernel here has openat2 and kAuto picks it", "[fs]") {
  TempDir t;
  Result<RootDir> root = RootDir::Open(t.path());
  REQUIRE(root.ok());
  CHECK(root->resolver() == RootDir::Resolver::kOpenat2);
}

TEST_CASE("RootDir: basic operations beneath the root", "[fs]") {
  auto resolver = GENERATE(RootDir::Resolver::kOpenat2, RootDir::Resolver::kWalk);
  TempDir t;
  RootDir root = OpenRoot(t.path(), resolver);

  REQUIRE(root.MakeDirs("a/b/c", 0755).ok());
  REQUIRE(root.MakeDirs("a/b/c", 0755).ok());  // idempotent
  CHECK(std::filesystem::is_directory(t / "a/b/c"));
  {
    Result<UniqueFd> f = root.OpenBeneath("a/b/f.txt", O_WRONLY | O_CREAT | O_EXCL, 0600);
    REQUIRE(f.ok());
    REQUIRE(::write(f->get(), "hello", 5) == 5);
  }
  Result<struct stat> st = root.Lstat("a/b/f.txt");
  REQUIRE(st.ok());
  CHECK(S_ISREG(st->st_mode));
  CHECK(st->st_size == 5);
  CHECK(root.Lstat("").ok());

  REQUIRE(root.Chmod("a/b/f.txt", 0640).ok());
  REQUIRE(root.SetMtime("a/b/f.txt", 1'600'000'000'123'456'789).ok());
  st = root.Lstat("a/b/f.txt");
  REQUIRE(st.ok());
  CHECK((st->st_mode & 07777) == 0640);
  CHECK(st->st_mtim.tv_sec == 1'600'000'000);
  CHECK(st->st_mtim.tv_nsec == 123'456'789);

  Result<UniqueFd> rd = root.OpenRead("a/b/f.txt");
  REQUIRE(rd.ok());
  char buf[8] = {};
  CHECK(::read(rd->get(), buf, sizeof(buf)) == 5);
  CHECK(std::string(buf) == "hello");

  REQUIRE(root.Symlink("../../elsewhere", "a/link").ok());
  Result<std::string> target = root.ReadLink("a/link");
  REQUIRE(target.ok());
  CHECK(*target == "../../elsewhere");
  CHECK(S_ISLNK(root.Lstat("a/link")->st_mode));

  REQUIRE(root.Rename("a/b/f.txt", "a/g.txt").ok());
  CHECK(Exists(t / "a/g.txt"));
  CHECK_FALSE(Exists(t / "a/b/f.txt"));
  WriteFile(t / "a/h.txt", "x");
  Status s = root.Rename("a/g.txt", "a/h.txt", /*noreplace=*/true);
  CHECK(s.code() == Code::kAlreadyExists);
  CHECK(ReadFile(t / "a/h.txt") == "x");
  REQUIRE(root.Rename("a/g.txt", "a/h.txt").ok());
  CHECK(ReadFile(t / "a/h.txt") == "hello");

  Status notempty = root.RemoveDir("a/b");
  CHECK_FALSE(notempty.ok());
  CHECK(notempty.message().find("a/b") != std::string::npos);
  REQUIRE(root.RemoveDir("a/b/c").ok());
  REQUIRE(root.RemoveDir("a/b").ok());
  REQUIRE(root.Unlink("a/link").ok());
  REQUIRE(root.Unlink("a/h.txt").ok());
  CHECK(root.Lstat("a/h.txt").status().code() == Code::kNotFound);
  CHECK(root.Unlink("a/h.txt").code() == Code::kNotFound);
}

TEST_CASE("RootDir: '..', absolute and non-canonical paths are rejected", "[fs]") {
  auto resolver = GENERATE(RootDir::Resolver::kOpenat2, RootDir::Resolver::kWalk);
  TempDir outer;
  MakeDirs(outer / "root/sub");
  WriteFile(outer / "secret", "s");
  WriteFile(outer / "root/inside.txt", "i");
  RootDir root = OpenRoot(outer / "root", resolver);
  auto before = Snapshot(outer.path());
  for (const char* p : {"..", "../secret", "sub/../../secret", "/etc/passwd", "./inside.txt",
                        "sub//x", "sub/", "sub/.", "a\\b"}) {
    ExpectAllRefused(root, p);
    CHECK(root.Lstat(p).status().code() == Code::kInvalidArgument);
  }
  CHECK(Snapshot(outer.path()) == before);
}

TEST_CASE("RootDir: a symlink to a directory outside is never followed", "[fs]") {
  auto resolver = GENERATE(RootDir::Resolver::kOpenat2, RootDir::Resolver::kWalk);
  TempDir outer;
  MakeDirs(outer / "root");
  MakeDirs(outer / "outside/sub");
  WriteFile(outer / "outside/passwd", "root:x:0:0");
  WriteFile(outer / "root/inside.txt", "i");
  MakeSymlink(outer / "outside", outer / "root/d");
  MakeSymlink("../outside", outer / "root/rel");
  MakeSymlink("/etc", outer / "root/etc");
  RootDir root = OpenRoot(outer / "root", resolver);
  auto before = Snapshot(outer / "outside");
  struct stat etc_before;
  REQUIRE(::stat("/etc/passwd", &etc_before) == 0);

  for (const char* p : {"d/passwd", "d/sub", "rel/passwd", "etc/passwd", "d/sub/x"}) {
    ExpectAllRefused(root, p);
  }
  CHECK(root.Lstat("d/passwd").status().code() == Code::kPermissionDenied);
  CHECK(root.Lstat("d/passwd").status().message().find("d/passwd") != std::string::npos);

  CHECK(Snapshot(outer / "outside") == before);
  struct stat etc_after;
  REQUIRE(::stat("/etc/passwd", &etc_after) == 0);
  CHECK(etc_after.st_mtim.tv_sec == etc_before.st_mtim.tv_sec);
  CHECK(etc_after.st_mode == etc_before.st_mode);
  CHECK_FALSE(Exists(outer / "stolen"));
  CHECK_FALSE(Exists(outer / "root/stolen"));
}

TEST_CASE("RootDir: a final symlink is handled as the link itself", "[fs]") {
  auto resolver = GENERATE(RootDir::Resolver::kOpenat2, RootDir::Resolver::kWalk);
  TempDir outer;
  MakeDirs(outer / "root");
  WriteFile(outer / "target.txt", "t");
  ::chmod((outer / "target.txt").c_str(), 0600);
  MakeSymlink(outer / "target.txt", outer / "root/l");
  RootDir root = OpenRoot(outer / "root", resolver);

  CHECK(S_ISLNK(root.Lstat("l")->st_mode));
  CHECK(root.ReadLink("l").value() == outer / "target.txt");
  CHECK_FALSE(root.OpenRead("l").ok());
  CHECK_FALSE(root.OpenDir("l").ok());
  CHECK_FALSE(root.OpenBeneath("l", O_WRONLY | O_TRUNC).ok());
  CHECK(root.Chmod("l", 0777).code() == Code::kPermissionDenied);
  // O_PATH | O_NOFOLLOW gives the link itself.
  Result<UniqueFd> lp = root.OpenBeneath("l", O_PATH);
  REQUIRE(lp.ok());
  struct stat st;
  REQUIRE(::fstat(lp->get(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  // mtime of the link, not of its target.
  REQUIRE(root.SetMtime("l", 1'000'000'000'000'000'000).ok());
  REQUIRE(::stat((outer / "target.txt").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec != 1'000'000'000);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(root.Unlink("l").ok());
  CHECK(Exists(outer / "target.txt"));
}

TEST_CASE("RootDir: a directory swapped for a symlink between two calls cannot be escaped",
          "[fs]") {
  auto resolver = GENERATE(RootDir::Resolver::kOpenat2, RootDir::Resolver::kWalk);
  TempDir outer;
  MakeDirs(outer / "root/a");
  MakeDirs(outer / "outside");
  WriteFile(outer / "root/a/f", "mine");
  WriteFile(outer / "outside/f", "theirs");
  RootDir root = OpenRoot(outer / "root", resolver);

  REQUIRE(root.Lstat("a/f").ok());
  Result<ParentDir> held = root.OpenParentDir("a/f");  // resolved before the swap
  REQUIRE(held.ok());

  std::filesystem::rename(outer / "root/a", outer / "root/a2");
  MakeSymlink(outer / "outside", outer / "root/a");
  auto before = Snapshot(outer / "outside");

  ExpectAllRefused(root, "a/f");
  CHECK(root.Lstat("a/f").status().code() == Code::kPermissionDenied);
  // The fd resolved before the swap still names the real directory, which
  // stayed inside the root (now a2).
  REQUIRE(::unlinkat(held->dir.get(), "f", 0) == 0);
  CHECK_FALSE(Exists(outer / "root/a2/f"));
  CHECK(Snapshot(outer / "outside") == before);
}

TEST_CASE("RootDir: MakeDirs stops at a file or a symlink in the way", "[fs]") {
  auto resolver = GENERATE(RootDir::Resolver::kOpenat2, RootDir::Resolver::kWalk);
  TempDir outer;
  MakeDirs(outer / "root");
  MakeDirs(outer / "outside");
  WriteFile(outer / "root/file", "f");
  MakeSymlink(outer / "outside", outer / "root/link");
  RootDir root = OpenRoot(outer / "root", resolver);

  CHECK(root.MakeDirs("file/x", 0755).code() == Code::kAlreadyExists);
  CHECK(root.MakeDirs("link/x", 0755).code() == Code::kPermissionDenied);
  CHECK(root.MakeDirs("link", 0755).code() == Code::kPermissionDenied);
  CHECK(std::filesystem::is_empty(outer / "outside"));
  CHECK(root.MakeDir("file/x", 0755).code() == Code::kNotFound);  // ENOTDIR
}

TEST_CASE("RootDir: OpenRead refuses a FIFO without blocking", "[fs]") {
  TempDir t;
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0600) == 0);
  RootDir root = OpenRoot(t.path(), RootDir::Resolver::kAuto);
  Result<UniqueFd> fd = root.OpenRead("fifo");
  CHECK(fd.status().code() == Code::kInvalidArgument);
}

TEST_CASE("RootDir: errno statuses name the call and the path", "[fs]") {
  Status s = ErrnoStatus("mkdir", "a/b", ENOENT);
  CHECK(s.code() == Code::kNotFound);
  CHECK(s.message() == "mkdir a/b: No such file or directory");
  CHECK(ErrnoStatus("open", "x", EEXIST).code() == Code::kAlreadyExists);
  CHECK(ErrnoStatus("open", "x", ELOOP).code() == Code::kPermissionDenied);
  CHECK(ErrnoStatus("open", "x", EXDEV).code() == Code::kPermissionDenied);
  CHECK(ErrnoStatus("open", "x", EIO).code() == Code::kIoError);
  CHECK(ErrnoStatus("open", "", EIO).message() == "open .: Input/output error");
}

TEST_CASE("RootDir: opening a missing root fails with its path", "[fs]") {
  Result<RootDir> r = RootDir::Open("/nonexistent/gossync/root");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message().find("/nonexistent/gossync/root") != std::string::npos);
}

}  // namespace
}  // namespace gossync::store
