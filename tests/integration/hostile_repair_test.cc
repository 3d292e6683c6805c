// A peer with a valid certificate that sends every malformed thing the repair
// protocol can carry (issue 6, "Hostile peers and input"; issue 4). After
// each act: the session is dropped with a logged reason and a counter, nothing
// outside data_dir changed, data_dir holds no corrupt or partial file, the
// agent runs, and a well-behaved peer still syncs with it.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>

#include "tests/testutil/hostile_env.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The abort counters a malformed message can land in.
uint64_t Refusals(const HostileCluster& c) {
  nlohmann::json s = c.target->Status();
  uint64_t n = 0;
  for (const auto& [k, v] : s["counters"]["repair"]["aborts"].items()) n += v.get<uint64_t>();
  return n;
}

// `tree` (a TreeFingerprint) with `line` added in its place.
std::string WithLine(const std::string& tree, const std::string& line) {
  std::vector<std::string> lines;
  std::istringstream in(tree);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// Sends `m` on a fresh session and expects the agent to abort it (an ABORT
// with a reason, then the connection closed) under one more count of
// `counter` (or of any counter when empty).
void ExpectRefused(HostileCluster& c, const core::RepairMessage& m, const std::string& counter,
                   const std::string& what) {
  INFO(what);
  uint64_t before = counter.empty() ? Refusals(c) : c.Aborts(counter);
  auto peer = c.Connect();
  REQUIRE(peer->Send(m).ok());
  REQUIRE(peer->WaitClosed(seconds(10)));
  CHECK(peer->abort_reason().has_value());
  INFO("abort reason: " << peer->abort_reason().value_or("(none)"));
  bool counted = WaitFor(
      [&] { return (counter.empty() ? Refusals(c) : c.Aborts(counter)) >= before + 1; },
      seconds(10));
  INFO(c.LogTail());
  CHECK(counted);
}

std::vector<std::pair<std::string, std::string>> BadPaths() {
  std::string long_component(4096, 'n');
  std::string long_path;
  while (long_path.size() < 5000) long_path += "abcdefgh/";
  long_path += "x";
  return {
      {"../x", "parent"},
      {"/etc/x", "absolute"},
      {"a/../../x", "climbs out"},
      {"a//b", "empty component"},
      {".", "dot"},
      {"./x", "dot component"},
      {"a/", "trailing slash"},
      {"", "empty"},
      {std::string("a\0b", 3), "NUL"},
      {"..\\x", "backslash parent"},
      {"a\\..\\..\\x", "backslashes"},
      {long_component, "4 KiB component"},
      {long_path, "5,000-byte path"},
      {"\xff\xfe.txt", "invalid UTF-8"},
      {"\xc0\xae\xc0\xae/x", "overlong-encoded dots"},
      {"\xed\xa0\x80.txt", "UTF-16 surrogate"},
  };
}

TEST_CASE("Hostile peer: paths that escape data_dir or are not canonical are refused",
          "[integration][hostile]") {
  HostileCluster c;
  WriteFile(c.target->data_dir() + "/real.txt", "real content\n");
  c.Start();
  for (const auto& [path, what] : BadPaths()) {
    core::Entry e = FileEntry(path, "written by mallory\n");
    ExpectRefused(c, core::EntriesMsg{{e}}, "", "ENTRIES " + what);
    core::Entry d = e;
    d.kind = core::EntryKind::kDirectory;
    d.hash = {};
    d.size = 0;
    ExpectRefused(c, core::EntriesMsg{{d}}, "", "ENTRIES directory " + what);
    ExpectRefused(c, core::BlockReqMsg{1, path, Sha256Of("real content\n"), {0}}, "",
                  "BLOCK_REQ " + what);
    ExpectRefused(c, core::BlockListReqMsg{1, path, Sha256Of("real content\n")}, "",
                  "BLOCKLIST_REQ " + what);
  }
  // A good entry after bad ones in the same message: nothing of it is applied.
  ExpectRefused(c, core::EntriesMsg{{FileEntry("fine.txt", "x"), FileEntry("../x", "x")}},
                "", "a good entry next to a bad one");
  // The reasons are logged, with the counter.
  std::string log = c.target->log();
  CHECK(log.find("aborted peer=mallory counter=bad_path") != std::string::npos);
  CHECK(log.find("aborted peer=mallory counter=malformed") != std::string::npos);
  c.ExpectIntact(c.tree());
  CHECK_FALSE(fs::exists(c.target->data_dir() + "/fine.txt"));
}

TEST_CASE("Hostile peer: a symlink to outside data_dir followed by a file beneath it writes "
          "nothing outside",
          "[integration][hostile]") {
  HostileCluster c;
  c.Start();
  const std::string pwned = "written through a symlink\n";

  SECTION("in one message") {
    core::EntriesMsg m{{SymlinkEntry("d", c.outside), FileEntry("d/marker", pwned),
                        FileEntry("d/new.txt", pwned), FileEntry("d/sub/marker", pwned, 77, 2)}};
    auto peer = c.Connect();
    REQUIRE(peer->Send(m).ok());
    ServeResult r = Serve(*peer, {{"d/marker", pwned}, {"d/new.txt", pwned},
                                  {"d/sub/marker", pwned}});
    INFO(c.LogTail());
    INFO("served: " << r.error << " " << r.aborted.value_or(""));
    // The link itself is data (a symlink is synced as its target text).
    c.ExpectIntact(WithLine(c.tree(), "d -> link " + c.outside));
  }
  SECTION("the symlink first, then the files, a deletion and a directory in later sessions") {
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{SymlinkEntry("d", c.outside)}}).ok());
    ServeResult r = Serve(*peer, {});
    CHECK(r.finished);
    REQUIRE(WaitFor([&] { return fs::is_symlink(c.target->data_dir() + "/d"); }, seconds(10)));
    std::string with_link = WithLine(c.tree(), "d -> link " + c.outside);

    peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("d/marker", pwned),
                                         FileEntry("d/new.txt", pwned)}})
                .ok());
    r = Serve(*peer, {{"d/marker", pwned}, {"d/new.txt", pwned}});
    INFO(c.LogTail());
    c.ExpectIntact(with_link);

    core::Entry del = FileEntry("d/marker", "", 77, 5);
    del.deleted = true;
    del.hash = {};
    del.size = 0;
    core::Entry dir = FileEntry("d/newdir", "", 77, 5);
    dir.kind = core::EntryKind::kDirectory;
    dir.hash = {};
    dir.size = 0;
    core::Entry link = SymlinkEntry("d/evil-link", "/etc/shadow", 77, 5);
    peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{del, dir, link}}).ok());
    r = Serve(*peer, {});
    c.ExpectIntact(c.tree());
  }
  SECTION("a local directory swapped for a symlink while a pull is in flight") {
    // Set up: sub/ with a file, known to both agents.
    MakeDirs(c.target->data_dir() + "/sub");
    WriteFile(c.target->data_dir() + "/sub/f.txt", "inside\n");
    WriteFile(c.outside + "/f.txt", "outside f\n");  // before the snapshot below
    REQUIRE(WaitFor([&] { return ReadFile(c.good->data_dir() + "/sub/f.txt") == "inside\n"; },
                    seconds(20)));
    c.Rebase();  // the snapshot and the tree now include all of the above
    auto peer = c.Connect();
    core::Entry del = FileEntry("sub/f.txt", "", 77, 50);
    del.deleted = true;
    del.hash = {};
    del.size = 0;
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("sub/new.txt", pwned)}}).ok());
    Result<core::RepairMessage> m = peer->Receive(seconds(5));
    REQUIRE(m.ok());
    auto* q = std::get_if<core::BlockReqMsg>(&*m);
    REQUIRE(q != nullptr);
    // The agent waits for the content; its directory becomes a symlink.
    c.target->Pause();
    fs::rename(c.target->data_dir() + "/sub", c.target->data_dir() + "/sub.orig");
    fs::create_symlink(c.outside, c.target->data_dir() + "/sub");
    std::string expected = TreeFingerprint(c.target->data_dir());
    REQUIRE(peer->Send(core::BlockMsg{q->req, 0, Bytes(pwned)}).ok());
    REQUIRE(peer->Send(core::EntriesMsg{{del}}).ok());
    c.target->Resume();
    Serve(*peer, {{"sub/new.txt", pwned}});
    INFO(c.LogTail());
    CHECK(ReadFile(c.outside + "/f.txt") == "outside f\n");
    CHECK_FALSE(fs::exists(c.outside + "/new.txt"));
    // Whatever the agent did inside data_dir is its own business (the file
    // may have landed in sub.orig, whose descriptor it held); outside is not.
    std::string now = TreeFingerprint(c.target->data_dir());
    if (now != expected) WARN("data_dir after the swap:\n" << now);
    c.ExpectIntact("");
  }
  SECTION("a relative symlink that climbs out") {
    core::EntriesMsg m{{SymlinkEntry("up", "../../outside"), FileEntry("up/marker", pwned),
                        FileEntry("up/sub/x", pwned)}};
    auto peer = c.Connect();
    REQUIRE(peer->Send(m).ok());
    Serve(*peer, {{"up/marker", pwned}, {"up/sub/x", pwned}});
    c.ExpectIntact(WithLine(c.tree(), "up -> link ../../outside"));
  }
}

TEST_CASE("Hostile peer: d -> /etc and then d/passwd leaves /etc/passwd alone",
          "[integration][hostile]") {
  HostileCluster c;
  c.Start();
  // The content offered is /etc/passwd's own, so that even a broken agent
  // could not damage this machine; a write would still show as a new inode.
  std::string passwd = ReadFile("/etc/passwd");
  FsSnapshot etc = FsSnapshot::Take({}, {}, {"/etc/passwd", "/etc/x", "/etc/gossync-x"});
  auto peer = c.Connect();
  REQUIRE(peer->Send(core::EntriesMsg{{SymlinkEntry("d", "/etc"),
                                       FileEntry("d/passwd", passwd, 77, 1),
                                       FileEntry("d/gossync-x", "x", 77, 1)}})
              .ok());
  Serve(*peer, {{"d/passwd", passwd}, {"d/gossync-x", "x"}});
  CHECK(etc.DiffTo(FsSnapshot::Take({}, {}, {"/etc/passwd", "/etc/x", "/etc/gossync-x"})) == "");
  c.ExpectIntact(WithLine(c.tree(), "d -> link /etc"));
}

TEST_CASE("Hostile peer: block requests outside the index or behind a symlink get nothing",
          "[integration][hostile]") {
  HostileCluster c;
  const std::string real = "indexed content\n";
  WriteFile(c.target->data_dir() + "/real.txt", real);
  fs::create_symlink(c.outside, c.target->data_dir() + "/link");
  MakeDirs(c.target->data_dir() + "/sub");
  WriteFile(c.target->data_dir() + "/sub/secret.txt", "inside secret\n");
  WriteFile(c.outside + "/secret.txt", "OUTSIDE SECRET\n");
  c.Start();
  auto no_block = [](const TestPeer& p) {
    for (const core::RepairMessage& m : p.received()) {
      if (std::holds_alternative<core::BlockMsg>(m) || std::holds_alternative<core::BlockListMsg>(m))
        return false;
    }
    return true;
  };

  SECTION("not in the index, a symlink, a path beneath one, a wrong hash: not_found") {
    auto peer = c.Connect();
    struct Ask {
      std::string path;
      std::string content;
    };
    std::vector<Ask> asks = {{"nothere.txt", "x"},
                             {"link", c.outside},
                             {"link/marker", "outside marker\n"},
                             {"link/secret.txt", "OUTSIDE SECRET\n"},
                             {"real.txt", "another content\n"},
                             {"sub", ""}};
    uint32_t req = 1;
    for (const Ask& a : asks) {
      INFO(a.path);
      REQUIRE(peer->Send(core::BlockReqMsg{req, a.path, Sha256Of(a.content), {0}}).ok());
      Result<core::RepairMessage> m = peer->Receive(seconds(5));
      REQUIRE(m.ok());
      auto* e = std::get_if<core::ReqErrorMsg>(&*m);
      REQUIRE(e != nullptr);
      CHECK(e->req == req);
      CHECK(e->code == uint8_t(core::ReqErrorCode::kNotFound));
      ++req;
      REQUIRE(peer->Send(core::BlockListReqMsg{req, a.path, Sha256Of(a.content)}).ok());
      m = peer->Receive(seconds(5));
      REQUIRE(m.ok());
      e = std::get_if<core::ReqErrorMsg>(&*m);
      REQUIRE(e != nullptr);
      CHECK(e->code == uint8_t(core::ReqErrorCode::kNotFound));
      ++req;
    }
    CHECK(no_block(*peer));
    // The session itself is fine: it ends politely.
    ServeResult r = Serve(*peer, {});
    CHECK(r.finished);
  }
  SECTION("a block past the end of a real file aborts the session") {
    uint64_t before = c.Aborts("bad_block");
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::BlockReqMsg{1, "real.txt", Sha256Of(real), {5}}).ok());
    REQUIRE(peer->WaitClosed(seconds(10)));
    CHECK(no_block(*peer));
    CHECK(c.WaitAborts("bad_block", before + 1));
  }
  SECTION("a directory swapped for a symlink after indexing is not followed") {
    auto peer = c.Connect();
    std::string expected;
    c.target->Pause();
    fs::rename(c.target->data_dir() + "/sub", c.target->data_dir() + "/sub.orig");
    fs::create_symlink(c.outside, c.target->data_dir() + "/sub");
    expected = TreeFingerprint(c.target->data_dir());
    // Queued in the socket while the agent is stopped: it reads them before
    // its watcher can tell the index about the swap.
    REQUIRE(peer->Send(core::BlockReqMsg{1, "sub/secret.txt", Sha256Of("inside secret\n"), {0}})
                .ok());
    REQUIRE(peer->Send(core::BlockListReqMsg{2, "sub/secret.txt", Sha256Of("inside secret\n")})
                .ok());
    c.target->Resume();
    for (int i = 0; i < 2; ++i) {
      Result<core::RepairMessage> m = peer->Receive(seconds(5));
      REQUIRE(m.ok());
      CHECK(std::holds_alternative<core::ReqErrorMsg>(*m));
    }
    CHECK(no_block(*peer));
    Serve(*peer, {});
    // The watcher indexes the swap and the good peer learns of it; how the
    // two settle a directory replaced by a symlink (a plain change, or a
    // conflict copy when the peer re-versions the directory it could not
    // empty) is not this test's business: outside is.
    (void)expected;
    c.ExpectIntact("");
    return;
  }
  c.ExpectIntact(c.tree());
}

}  // namespace
}  // namespace gossync::testutil
