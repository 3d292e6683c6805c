// One real gossyncd on a temp dir: the local engine follows the disk.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/testutil/cluster.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Waits until status satisfies `pred`; returns the last status seen.
nlohmann::json WaitStatus(const Agent& a, const std::function<bool(const nlohmann::json&)>& pred,
                          milliseconds timeout) {
  nlohmann::json last;
  WaitFor(
      [&] {
        last = a.Status();
        return last.is_object() && last.contains("root") && pred(last);
      },
      timeout);
  return last;
}

TEST_CASE("Agent: status follows creates, edits, deletes, renames, chmods and symlinks",
          "[integration]") {
  TempDir tmp;
  ClusterSecrets secrets(tmp / "secrets");
  Agent agent(tmp.path(), &secrets, Named("alpha"));
  agent.Start();
  REQUIRE(agent.WaitReady());
  nlohmann::json s = agent.Status();
  CHECK(s["entries"] == 0);
  std::string empty_root = s["root"];

  // 1,000 files in nested directories: 10 top dirs x 10 subdirs x 10 files.
  for (int i = 0; i < 10; ++i) {
    for (int j = 0; j < 10; ++j) {
      std::string dir = agent.data_dir() + "/d" + std::to_string(i) + "/s" + std::to_string(j);
      MakeDirs(dir);
      for (int k = 0; k < 10; ++k) {
        WriteFile(dir + "/f" + std::to_string(k) + ".txt",
                  "content " + std::to_string(i * 100 + j * 10 + k));
      }
    }
  }
  const int kEntries = 1000 + 100 + 10;  // files + subdirs + top dirs
  s = WaitStatus(agent, [&](const auto& j) { return j["entries"] == kEntries; }, seconds(2));
  REQUIRE(s["entries"] == kEntries);
  CHECK(s["files"] == 1000);
  CHECK(s["directories"] == 110);
  std::string root = s["root"];
  CHECK(root != empty_root);

  auto expect_root_change = [&](const char* what, int entries) {
    INFO(what);
    nlohmann::json after = WaitStatus(
        agent, [&](const auto& j) { return j["root"] != root && j["entries"] == entries; },
        seconds(2));
    REQUIRE(after["root"] != root);
    REQUIRE(after["entries"] == entries);
    root = after["root"];
    return after;
  };

  WriteFile(agent.data_dir() + "/d0/s0/f0.txt", "edited");
  expect_root_change("edit", kEntries);

  fs::remove(agent.data_dir() + "/d0/s0/f1.txt");
  s = expect_root_change("delete", kEntries - 1);
  CHECK(s["tombstones"] == 1);

  fs::rename(agent.data_dir() + "/d0/s0/f2.txt", agent.data_dir() + "/d0/s0/renamed.txt");
  s = expect_root_change("rename", kEntries - 1);
  CHECK(s["tombstones"] == 2);

  REQUIRE(chmod((agent.data_dir() + "/d0/s0/f3.txt").c_str(), 0600) == 0);
  expect_root_change("chmod", kEntries - 1);

  fs::create_symlink("d0/s0/f3.txt", agent.data_dir() + "/link");
  s = expect_root_change("symlink", kEntries);
  CHECK(s["symlinks"] == 1);

  fs::rename(agent.data_dir() + "/d9", tmp / "moved-away");
  s = expect_root_change("directory moved out", kEntries - 111);
  CHECK(s["tombstones"] == 2 + 111);

  // A restart gives the same root without re-hashing unchanged files.
  REQUIRE(agent.Stop() == 0);
  agent.Start();
  REQUIRE(agent.WaitReady());
  s = agent.Status();
  CHECK(s["root"] == root);
  CHECK(s["entries"] == kEntries - 111);
  CHECK(s["scan"]["hashed_files"] == 0);
}

TEST_CASE("Agent: a local change whose index commit failed is recorded once the index works",
          "[integration]") {
  // A full disk fails the commit ("database or disk is full"); here another
  // process holds index.db's write lock past the agent's busy timeout (5 s).
  // Dropped, the change would wait for the next full rescan, and repair would
  // refuse the path meanwhile (chaos enospc_mid_repair never converged).
  TempDir tmp;
  ClusterSecrets secrets(tmp / "secrets");
  Agent agent(tmp.path(), &secrets, Named("alpha"));
  agent.Start();
  REQUIRE(agent.WaitReady());
  WriteFile(agent.data_dir() + "/a.txt", "a");
  REQUIRE(WaitStatus(
              agent, [](const auto& j) { return j["files"] == 1; }, seconds(5))["files"] == 1);

  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((agent.state_dir() + "/index.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  WriteFile(agent.data_dir() + "/b.txt", "b");
  const bool failed =
      WaitFor([&] { return agent.log().find("apply_failed") != std::string::npos; }, seconds(15));
  REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  REQUIRE(failed);
  nlohmann::json s = WaitStatus(agent, [](const auto& j) { return j["files"] == 2; }, seconds(5));
  CHECK(s["files"] == 2);
}

TEST_CASE("Agent: ignored paths and the agent's temp names never become entries",
          "[integration]") {
  TempDir tmp;
  ClusterSecrets secrets(tmp / "secrets");
  AgentOptions opts = Named("alpha");
  opts.extra_toml = "ignore = [\"*.swp\", \"cache/\"]";
  Agent agent(tmp.path(), &secrets, opts);
  WriteFile(agent.data_dir() + "/keep.txt", "x");
  WriteFile(agent.data_dir() + "/edit.swp", "x");
  MakeDirs(agent.data_dir() + "/cache/deep");
  WriteFile(agent.data_dir() + "/cache/deep/blob", "x");
  WriteFile(agent.data_dir() + "/partial.gossync-tmp", "x");
  agent.Start();
  REQUIRE(agent.WaitReady());
  CHECK(agent.Status()["entries"] == 1);
  WriteFile(agent.data_dir() + "/more.swp", "x");
  WriteFile(agent.data_dir() + "/cache/more", "x");
  WriteFile(agent.data_dir() + "/visible", "x");
  nlohmann::json s =
      WaitStatus(agent, [](const auto& j) { return j["entries"] == 2; }, seconds(2));
  CHECK(s["entries"] == 2);
}

TEST_CASE("gossyncd --check-config lists every problem and exits 2", "[integration]") {
  TempDir tmp;
  WriteFile(tmp / "bad.toml",
            "node = \"Bad!\"\ndata_dir = \"" + tmp.path() +
                "/missing\"\nbogus = 1\n[gossip]\nfanout = 99\n");
  RunResult r = Run({GossyncdPath(), "--check-config", "--config", tmp / "bad.toml"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("node:") != std::string::npos);
  CHECK(r.err.find("data_dir:") != std::string::npos);
  CHECK(r.err.find("bogus: unknown key") != std::string::npos);
  CHECK(r.err.find("gossip.fanout:") != std::string::npos);

  ClusterSecrets secrets(tmp / "secrets");
  Agent agent(tmp.path(), &secrets, Named("alpha"));
  RunResult ok = Run({GossyncdPath(), "--check-config", "--config", agent.config_path()});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
}

TEST_CASE("gossync reports an agent that is not running with exit code 3", "[integration]") {
  TempDir tmp;
  RunResult r = Cli({"--socket", tmp / "nobody.sock", "status"});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("is gossyncd running?") != std::string::npos);
}

}  // namespace
}  // namespace gossync::testutil
