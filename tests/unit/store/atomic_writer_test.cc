#include "agent/store/atomic_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <string>

#include "agent/core/hash.h"
#include "agent/store/scanner.h"
#include "tests/unit/store/fs_testing.h"

namespace gossync::store {
namespace {

using testing::Exists;
using testing::MakeDirs;
using testing::MakeSymlink;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

constexpr int64_t kMtime = 1'700'000'000'123'456'789;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::vector<core::Hash256> BlockHashes(std::string_view s, size_t bs) {
  std::vector<core::Hash256> v;
  for (size_t off = 0; off < s.size(); off += bs) v.push_back(core::Sha256(s.substr(off, bs)));
  return v;
}

// A data_dir and a state_dir side by side on the same file system.
struct Fixture {
  TempDir top;
  std::string data = top / "data";
  std::string state = top / "state";
  RootDir root;
  TempArea area;

  Fixture() : root(Init(top)), area(OpenArea(root, top / "state")) {}

  static RootDir Init(const TempDir& t) {
    MakeDirs(t / "data");
    MakeDirs(t / "outside");
    WriteFile(t / "outside/secret", "secret");
    Result<RootDir> r = RootDir::Open(t / "data");
    REQUIRE(r.ok());
    return std::move(r).value();
  }
  static TempArea OpenArea(const RootDir& root, const std::string& state) {
    Result<TempArea> a = TempArea::Open(root, state);
    INFO((a.ok() ? std::string("ok") : a.status().ToString()));
    REQUIRE(a.ok());
    return std::move(a).value();
  }

  PendingFile Pending(const std::string& path, const std::string& content) {
    Result<PendingFile> p =
        PendingFile::Open(area, path, core::Sha256(std::string_view(content)), content.size());
    REQUIRE(p.ok());
    return std::move(p).value();
  }

  std::vector<std::string> Visible() {
    Result<WalkResult> w = Walk(root, IgnoreMatcher());
    REQUIRE(w.ok());
    std::vector<std::string> v;
    for (const auto& o : w->entries) v.push_back(o.path);
    return v;
  }
};

TEST_CASE("TempArea: state_dir/tmp when it is on data_dir's file system", "[writer]") {
  Fixture f;
  CHECK_FALSE(f.area.inside_data_dir());
  CHECK(f.area.path() == f.state + "/tmp");
  struct stat st;
  REQUIRE(::stat((f.state + "/tmp").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(f.Visible().empty());  // the rename probe left nothing behind
}

TEST_CASE("TempArea: data_dir/.gossync-tmp when state_dir is on another file system", "[writer]") {
  struct stat shm, tmp;
  TempDir t;
  if (::stat("/dev/shm", &shm) != 0 || ::stat(t.path().c_str(), &tmp) != 0 ||
      shm.st_dev == tmp.st_dev || ::access("/dev/shm", W_OK) != 0) {
    WARN("no writable /dev/shm on another file system than $TMPDIR: skipped");
    return;
  }
  char tmpl[] = "/dev/shm/gossync-state-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string state = tmpl;
  MakeDirs(t / "data");
  Result<RootDir> root = RootDir::Open(t / "data");
  REQUIRE(root.ok());
  Result<TempArea> area = TempArea::Open(*root, state);
  std::filesystem::remove_all(state);
  REQUIRE(area.ok());
  CHECK(area->inside_data_dir());
  struct stat st;
  REQUIRE(::lstat((t / "data/.gossync-tmp").c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 0777) == 0700);
  // And it works end to end, invisible to the scanner.
  std::string content = "across file systems";
  Result<PendingFile> p =
      PendingFile::Open(*area, "x/y.txt", core::Sha256(std::string_view(content)), content.size());
  REQUIRE(p.ok());
  REQUIRE(p->WriteAt(0, Bytes(content)).ok());
  Result<WalkResult> w = Walk(*root, IgnoreMatcher());
  REQUIRE(w.ok());
  CHECK(w->entries.empty());
  REQUIRE(p->Commit(*root, "x/y.txt", 0644, kMtime).ok());
  CHECK(ReadFile(t / "data/x/y.txt") == content);
}

TEST_CASE("TempArea: a symlink planted at data_dir/.gossync-tmp is refused", "[writer]") {
  TempDir t;
  struct stat shm, tmp;
  if (::stat("/dev/shm", &shm) != 0 || ::stat(t.path().c_str(), &tmp) != 0 ||
      shm.st_dev == tmp.st_dev || ::access("/dev/shm", W_OK) != 0) {
    WARN("no writable /dev/shm on another file system than $TMPDIR: skipped");
    return;
  }
  char tmpl[] = "/dev/shm/gossync-state-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  MakeDirs(t / "data");
  MakeDirs(t / "outside");
  MakeSymlink(t / "outside", t / "data/.gossync-tmp");
  Result<RootDir> root = RootDir::Open(t / "data");
  REQUIRE(root.ok());
  Result<TempArea> area = TempArea::Open(*root, tmpl);
  std::filesystem::remove_all(tmpl);
  CHECK(area.status().code() == Code::kPermissionDenied);
  CHECK(std::filesystem::is_empty(t / "outside"));
}

TEST_CASE("PendingFile: commit writes, verifies and renames into place", "[writer]") {
  Fixture f;
  std::string content = RandomBytes(300'000, 1);
  PendingFile p = f.Pending("new/dirs/file.bin", content);
  REQUIRE(p.WriteAt(200'000, Bytes(std::string_view(content).substr(200'000))).ok());
  REQUIRE(p.WriteAt(0, Bytes(std::string_view(content).substr(0, 200'000))).ok());
  std::optional<LocalStat> seen;
  bool called = false;
  Status s =
      p.Commit(f.root, "new/dirs/file.bin", 0640, kMtime, [&](const std::optional<LocalStat>& cur) {
        called = true;
        seen = cur;
        return Status::Ok();
      });
  REQUIRE(s.ok());
  CHECK(called);
  CHECK_FALSE(seen.has_value());  // it was absent
  CHECK(ReadFile(f.data + "/new/dirs/file.bin") == content);
  struct stat st;
  REQUIRE(::lstat((f.data + "/new/dirs/file.bin").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_mtim.tv_sec == kMtime / 1'000'000'000);
  CHECK(st.st_mtim.tv_nsec == kMtime % 1'000'000'000);
  CHECK(std::filesystem::is_empty(f.state + "/tmp"));
  // Spent.
  CHECK(p.WriteAt(0, Bytes("x")).code() == Code::kAborted);
  CHECK(p.Commit(f.root, "new/dirs/file.bin", 0640, kMtime).code() == Code::kAborted);
}

TEST_CASE("PendingFile: replaces an existing regular file", "[writer]") {
  Fixture f;
  WriteFile(f.data + "/f", "old");
  PendingFile p = f.Pending("f", "new content");
  REQUIRE(p.WriteAt(0, Bytes("new content")).ok());
  std::optional<LocalStat> seen;
  REQUIRE(p.Commit(f.root, "f", 0644, kMtime, [&](const std::optional<LocalStat>& cur) {
             seen = cur;
             return Status::Ok();
           }).ok());
  REQUIRE(seen.has_value());
  CHECK(seen->size == 3);
  CHECK(ReadFile(f.data + "/f") == "new content");
}

TEST_CASE("PendingFile: a hash mismatch never renames", "[writer]") {
  Fixture f;
  WriteFile(f.data + "/f", "old");
  std::string content = "the expected content";
  PendingFile p = f.Pending("f", content);
  std::string wrong = content;
  wrong[3] ^= 1;
  REQUIRE(p.WriteAt(0, Bytes(wrong)).ok());
  Status s = p.Commit(f.root, "f", 0644, kMtime);
  CHECK(s.code() == Code::kCorruption);
  CHECK(ReadFile(f.data + "/f") == "old");
  PendingFile q = f.Pending("g", content);
  REQUIRE(q.WriteAt(0, Bytes(wrong)).ok());
  CHECK(q.Commit(f.root, "g", 0644, kMtime).code() == Code::kCorruption);
  CHECK_FALSE(Exists(f.data + "/g"));
  // Fixing the byte makes it commit: the temp file was kept.
  REQUIRE(q.WriteAt(3, Bytes(content.substr(3, 1))).ok());
  CHECK(q.Commit(f.root, "g", 0644, kMtime).ok());
  CHECK(ReadFile(f.data + "/g") == content);
}

TEST_CASE("PendingFile: an incomplete file is not committed", "[writer]") {
  Fixture f;
  PendingFile p = f.Pending("f", "0123456789");
  REQUIRE(p.WriteAt(0, Bytes("01234")).ok());
  CHECK(p.Commit(f.root, "f", 0644, kMtime).code() == Code::kUnavailable);
  CHECK_FALSE(Exists(f.data + "/f"));
  CHECK(p.WriteAt(5, Bytes("567890")).code() == Code::kLimitExceeded);  // past the size
  CHECK(p.WriteAt(~uint64_t{0}, Bytes("x")).code() == Code::kLimitExceeded);
}

TEST_CASE("PendingFile: a destination replaced by a symlink to outside is refused", "[writer]") {
  Fixture f;
  MakeSymlink(f.top / "outside/secret", f.data + "/f");
  PendingFile p = f.Pending("f", "payload");
  REQUIRE(p.WriteAt(0, Bytes("payload")).ok());
  Status s = p.Commit(f.root, "f", 0644, kMtime);
  CHECK(s.code() == Code::kAborted);
  CHECK(ReadFile(f.top / "outside/secret") == "secret");
  struct stat st;
  REQUIRE(::lstat((f.data + "/f").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE("PendingFile: a parent directory that is a symlink is refused", "[writer]") {
  Fixture f;
  MakeSymlink(f.top / "outside", f.data + "/d");
  PendingFile p = f.Pending("d/secret", "payload");
  REQUIRE(p.WriteAt(0, Bytes("payload")).ok());
  Status s = p.Commit(f.root, "d/secret", 0644, kMtime);
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK(ReadFile(f.top / "outside/secret") == "secret");
  PendingFile q = f.Pending("d/sub/new", "payload");
  REQUIRE(q.WriteAt(0, Bytes("payload")).ok());
  CHECK(q.Commit(f.root, "d/sub/new", 0644, kMtime).code() == Code::kPermissionDenied);
  CHECK_FALSE(Exists(f.top / "outside/sub"));
}

TEST_CASE("PendingFile: a failed precondition stops the apply (the conflict path)", "[writer]") {
  Fixture f;
  WriteFile(f.data + "/f", "local edit");
  PendingFile p = f.Pending("f", "remote");
  REQUIRE(p.WriteAt(0, Bytes("remote")).ok());
  Status s = p.Commit(f.root, "f", 0644, kMtime, [](const std::optional<LocalStat>& cur) {
    if (cur && cur->size != 3) return Status::Aborted("local file changed since the decision");
    return Status::Ok();
  });
  CHECK(s.code() == Code::kAborted);
  CHECK(s.message() == "local file changed since the decision");
  CHECK(ReadFile(f.data + "/f") == "local edit");
}

TEST_CASE("PendingFile: a file created after the check is not clobbered", "[writer]") {
  Fixture f;
  PendingFile p = f.Pending("f", "remote");
  REQUIRE(p.WriteAt(0, Bytes("remote")).ok());
  Status s = p.Commit(f.root, "f", 0644, kMtime, [&](const std::optional<LocalStat>& cur) {
    REQUIRE_FALSE(cur.has_value());
    WriteFile(f.data + "/f", "raced in");  // a local writer wins the race
    return Status::Ok();
  });
  CHECK(s.code() == Code::kAlreadyExists);
  CHECK(ReadFile(f.data + "/f") == "raced in");
}

TEST_CASE("PendingFile: a crash leaves nothing visible, and the transfer resumes", "[writer]") {
  Fixture f;
  const size_t bs = 64 * 1024;
  std::string content = RandomBytes(5 * bs + 1000, 42);
  core::Hash256 h = core::Sha256(std::string_view(content));
  auto blocks = BlockHashes(content, bs);
  WriteFile(f.data + "/big", "old version");
  {
    PendingFile p = f.Pending("big", content);
    REQUIRE(p.WriteAt(0, Bytes(std::string_view(content).substr(0, 2 * bs + 500))).ok());
    // Block 4 arrived out of order, block 3 never did.
    REQUIRE(p.WriteAt(4 * bs, Bytes(std::string_view(content).substr(4 * bs, bs))).ok());
  }  // "crash": the object goes away without Commit or Discard
  CHECK(f.Visible() == std::vector<std::string>{"big"});
  CHECK(ReadFile(f.data + "/big") == "old version");

  Result<PendingFile> again = PendingFile::Open(f.area, "big", h, content.size());
  REQUIRE(again.ok());
  CHECK(again->temp_name() == PendingFile::TempName("big", h));
  Result<PendingFile::Prefix> prefix = again->ValidPrefix(blocks, bs);
  REQUIRE(prefix.ok());
  CHECK(prefix->blocks == 2);
  CHECK(prefix->bytes == 2 * bs);
  Result<std::vector<bool>> valid = again->ValidBlocks(blocks, bs);
  REQUIRE(valid.ok());
  CHECK(*valid == std::vector<bool>{true, true, false, false, true, false});
  CHECK(again->ValidBlocks(std::span(blocks).subspan(1), bs).status().code() ==
        Code::kInvalidArgument);
  for (size_t i = 0; i < blocks.size(); ++i) {
    if ((*valid)[i]) continue;
    REQUIRE(again->WriteAt(i * bs, Bytes(std::string_view(content).substr(i * bs, bs))).ok());
  }
  prefix = again->ValidPrefix(blocks, bs);
  CHECK(prefix->blocks == 6);
  CHECK(prefix->bytes == content.size());
  REQUIRE(again->Commit(f.root, "big", 0600, kMtime).ok());
  CHECK(ReadFile(f.data + "/big") == content);
}

TEST_CASE("PendingFile: unchanged blocks are copied from the old local file", "[writer]") {
  Fixture f;
  std::string old_content = RandomBytes(200'000, 3);
  std::string new_content = old_content;
  new_content.replace(100'000, 10, "CHANGED!!!");
  WriteFile(f.data + "/f", old_content);
  Result<UniqueFd> old_fd = f.root.OpenRead("f");
  REQUIRE(old_fd.ok());
  PendingFile p = f.Pending("f", new_content);
  REQUIRE(p.CopyFrom(old_fd->get(), 0, 0, 100'000).ok());
  REQUIRE(p.WriteAt(100'000, Bytes(std::string_view(new_content).substr(100'000, 10))).ok());
  REQUIRE(p.CopyFrom(old_fd->get(), 100'010, 100'010, 99'990).ok());
  CHECK(p.CopyFrom(old_fd->get(), 0, 150'000, 60'000).code() == Code::kLimitExceeded);
  REQUIRE(p.Commit(f.root, "f", 0644, kMtime).ok());
  CHECK(ReadFile(f.data + "/f") == new_content);
}

TEST_CASE("PendingFile: temp names are deterministic per (path, hash)", "[writer]") {
  core::Hash256 a = core::Sha256(std::string_view("a"));
  core::Hash256 b = core::Sha256(std::string_view("b"));
  CHECK(PendingFile::TempName("p", a) == PendingFile::TempName("p", a));
  CHECK(PendingFile::TempName("p", a) != PendingFile::TempName("p", b));
  CHECK(PendingFile::TempName("p", a) != PendingFile::TempName("q", a));
  CHECK(PendingFile::TempName("p", a).size() == 64 + std::string(".gossync-tmp").size());
  CHECK(IgnoreMatcher::IsAgentName(PendingFile::TempName("p", a)));
}

TEST_CASE("TempArea: garbage collection removes only stale temp files", "[writer]") {
  Fixture f;
  PendingFile p = f.Pending("old", "x");
  PendingFile q = f.Pending("fresh", "y");
  std::string dir = f.state + "/tmp/";
  WriteFile(dir + "not-ours.txt", "keep");
  const int64_t now = 2'000'000'000LL * 1'000'000'000;
  const int64_t hour = 3600LL * 1'000'000'000;
  struct timespec old_ts[2] = {{0, UTIME_OMIT}, {(now - 48 * hour) / 1'000'000'000, 0}};
  struct timespec new_ts[2] = {{0, UTIME_OMIT}, {(now - 1 * hour) / 1'000'000'000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (dir + p.temp_name()).c_str(), old_ts, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, (dir + q.temp_name()).c_str(), new_ts, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, (dir + "not-ours.txt").c_str(), old_ts, 0) == 0);
  Result<size_t> n = f.area.CollectGarbage(now, 24 * hour);
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK_FALSE(Exists(dir + p.temp_name()));
  CHECK(Exists(dir + q.temp_name()));
  CHECK(Exists(dir + "not-ours.txt"));
}

TEST_CASE("TempArea: beyond max_idle, the oldest temp files no one holds are removed",
          "[writer]") {
  Fixture f;
  const std::string dir = f.area.path() + "/";
  const int64_t now = static_cast<int64_t>(::time(nullptr)) * 1'000'000'000;
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) {
    Result<PendingFile> p = PendingFile::Open(f.area, "f" + std::to_string(i),
                                              core::Sha256(std::to_string(i)), 10);
    REQUIRE(p.ok());
    names.push_back(p->temp_name());
    // f0 is the oldest, f5 the newest, all within the age limit.
    struct timespec ts[2] = {{0, UTIME_OMIT}, {now / 1'000'000'000 - 600 + i * 60, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (dir + names.back()).c_str(), ts, 0) == 0);
  }
  // f0 is in use (a pull holds it): it stays although it is the oldest.
  Result<size_t> n = f.area.CollectGarbage(now, int64_t{24} * 3600 * 1'000'000'000, 3,
                                           [&](const std::string& name) { return name == names[0]; });
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(Exists(dir + names[0]));
  CHECK_FALSE(Exists(dir + names[1]));
  CHECK_FALSE(Exists(dir + names[2]));
  for (int i : {3, 4, 5}) CHECK(Exists(dir + names[i]));
}

TEST_CASE("WriteSymlinkAtomically: creates and replaces symlinks only", "[writer]") {
  Fixture f;
  REQUIRE(WriteSymlinkAtomically(f.root, f.area, "a/l", "../target", kMtime).ok());
  std::error_code ec;
  CHECK(std::filesystem::read_symlink(f.data + "/a/l", ec).string() == "../target");
  struct stat st;
  REQUIRE(::lstat((f.data + "/a/l").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == kMtime / 1'000'000'000);
  std::optional<LocalStat> seen;
  REQUIRE(WriteSymlinkAtomically(f.root, f.area, "a/l", "/abs/other", 0,
                                 [&](const std::optional<LocalStat>& cur) {
                                   seen = cur;
                                   return Status::Ok();
                                 })
              .ok());
  REQUIRE(seen.has_value());
  CHECK(seen->target == "../target");
  CHECK(std::filesystem::read_symlink(f.data + "/a/l", ec).string() == "/abs/other");
  WriteFile(f.data + "/file", "f");
  CHECK(WriteSymlinkAtomically(f.root, f.area, "file", "x", 0).code() == Code::kAborted);
  CHECK(ReadFile(f.data + "/file") == "f");
  MakeSymlink(f.top / "outside", f.data + "/d");
  CHECK(WriteSymlinkAtomically(f.root, f.area, "d/l", "x", 0).code() == Code::kPermissionDenied);
  CHECK_FALSE(Exists(f.top / "outside/l"));
  CHECK(WriteSymlinkAtomically(f.root, f.area, "e", "", 0).code() == Code::kInvalidArgument);
  CHECK(std::filesystem::is_empty(f.state + "/tmp"));
}

TEST_CASE("MakeDirectory: exact mode, idempotent, never over a file", "[writer]") {
  Fixture f;
  REQUIRE(MakeDirectory(f.root, "x/y/z", 0770).ok());
  struct stat st;
  REQUIRE(::lstat((f.data + "/x/y/z").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0770);
  REQUIRE(MakeDirectory(f.root, "x/y/z", 0700).ok());
  REQUIRE(::lstat((f.data + "/x/y/z").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  WriteFile(f.data + "/file", "f");
  CHECK(MakeDirectory(f.root, "file", 0755).code() == Code::kAlreadyExists);
  MakeSymlink(f.top / "outside", f.data + "/link");
  CHECK_FALSE(MakeDirectory(f.root, "link", 0755).ok());
  CHECK_FALSE(MakeDirectory(f.root, "link/sub", 0755).ok());
  CHECK_FALSE(Exists(f.top / "outside/sub"));
}

TEST_CASE("RemoveEntry: files, symlinks, empty and non-empty directories", "[writer]") {
  Fixture f;
  MakeDirs(f.data + "/full/sub");
  MakeDirs(f.data + "/empty");
  WriteFile(f.data + "/file", "f");
  MakeSymlink(f.top / "outside/secret", f.data + "/link");
  MakeSymlink(f.top / "outside", f.data + "/dlink");

  CHECK(RemoveEntry(f.root, "file").value() == RemoveOutcome::kRemoved);
  CHECK_FALSE(Exists(f.data + "/file"));
  CHECK(RemoveEntry(f.root, "file").value() == RemoveOutcome::kAlreadyGone);
  CHECK(RemoveEntry(f.root, "nodir/file").value() == RemoveOutcome::kAlreadyGone);
  CHECK(RemoveEntry(f.root, "full").value() == RemoveOutcome::kNotEmpty);
  CHECK(Exists(f.data + "/full/sub"));
  CHECK(RemoveEntry(f.root, "empty").value() == RemoveOutcome::kRemoved);
  CHECK(RemoveEntry(f.root, "link").value() == RemoveOutcome::kRemoved);
  CHECK(ReadFile(f.top / "outside/secret") == "secret");
  CHECK(RemoveEntry(f.root, "dlink/secret").status().code() == Code::kPermissionDenied);
  CHECK(ReadFile(f.top / "outside/secret") == "secret");

  WriteFile(f.data + "/kept", "local");
  Result<RemoveOutcome> r = RemoveEntry(f.root, "kept", [](const std::optional<LocalStat>& cur) {
    return cur && cur->size == 5 ? Status::Aborted("changed locally") : Status::Ok();
  });
  CHECK(r.status().code() == Code::kAborted);
  CHECK(Exists(f.data + "/kept"));
  CHECK(RemoveEntry(f.root, "../x").status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace gossync::store
