// Real agents repairing over mutual TLS on 127.0.0.1 (issue 4).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "tests/testutil/cluster.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

const char* kFastGossip =
    "interval_ms = 200\nprobe_interval_ms = 250\nprobe_timeout_ms = 100\nsuspicion_mult = 4\n";

struct Cluster {
  TempDir tmp;
  ClusterSecrets secrets{tmp / "secrets"};
  std::vector<std::unique_ptr<Agent>> agents;

  explicit Cluster(int n, const std::string& extra_toml = "") {
    for (int i = 0; i < n; ++i) {
      AgentOptions o = Named(std::string(1, char('a' + i)) + "node");
      o.gossip_toml = kFastGossip;
      o.extra_toml = extra_toml;
      if (i > 0) o.seeds = {agents[0]->gossip_address()};
      agents.push_back(std::make_unique<Agent>(tmp.path(), &secrets, o));
    }
  }
  void StartAll() {
    for (auto& a : agents) a->Start();
    for (auto& a : agents) REQUIRE(a->WaitReady());
  }
  Agent& operator[](size_t i) { return *agents[i]; }

  // Every agent's data dir has the same files, modes and contents, and
  // every agent reports the same root.
  bool Converged() {
    std::string first = TreeFingerprint(agents[0]->data_dir());
    for (auto& a : agents) {
      if (TreeFingerprint(a->data_dir()) != first) return false;
    }
    std::string root;
    for (auto& a : agents) {
      nlohmann::json s = a->Status();
      if (!s.contains("root")) return false;
      if (root.empty()) root = s["root"];
      if (s["root"] != root) return false;
    }
    return true;
  }
  bool WaitConverged(seconds timeout = seconds(20)) {
    return WaitFor([&] { return Converged(); }, timeout);
  }
  std::string Diagnose() {
    std::string out;
    for (auto& a : agents) {
      out += "== " + a->name() + "\n" + TreeFingerprint(a->data_dir()) + "\n";
      std::string log = a->log();
      out += log.size() > 6000 ? log.substr(log.size() - 6000) : log;
    }
    return out;
  }
};

TEST_CASE("Repair: files written on one agent reach the others", "[integration][repair]") {
  Cluster c(3);
  c.StartAll();
  MakeDirs(c[0].data_dir() + "/dir/sub");
  WriteFile(c[0].data_dir() + "/a.txt", "hello");
  WriteFile(c[0].data_dir() + "/dir/sub/b.bin", std::string(300 * 1024, 'x'));
  fs::create_symlink("a.txt", c[0].data_dir() + "/link");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  CHECK(ReadFile(c[2].data_dir() + "/dir/sub/b.bin").size() == 300 * 1024);
  CHECK(fs::read_symlink(c[1].data_dir() + "/link") == "a.txt");

  // Edit, rename, chmod and delete on another agent.
  WriteFile(c[1].data_dir() + "/a.txt", "edited on b");
  fs::rename(c[1].data_dir() + "/dir/sub/b.bin", c[1].data_dir() + "/dir/b-renamed.bin");
  REQUIRE(chmod((c[1].data_dir() + "/a.txt").c_str(), 0600) == 0);
  fs::remove(c[1].data_dir() + "/link");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  CHECK(ReadFile(c[0].data_dir() + "/a.txt") == "edited on b");
  CHECK_FALSE(fs::exists(c[2].data_dir() + "/link"));
  CHECK_FALSE(fs::exists(c[2].data_dir() + "/dir/sub/b.bin"));
  CHECK(fs::exists(c[2].data_dir() + "/dir/b-renamed.bin"));
}


// Random operations on one data dir: creates, edits, deletes, renames,
// chmods, symlinks and directories. Deterministic from `rng`.
void RandomOps(const std::string& dir, std::mt19937& rng, int ops, const std::string& tag) {
  auto files = [&] {
    std::vector<fs::path> v;
    for (auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.is_symlink() || !e.is_regular_file()) continue;
      v.push_back(e.path());
    }
    std::sort(v.begin(), v.end());
    return v;
  };
  for (int i = 0; i < ops; ++i) {
    auto existing = files();
    int op = static_cast<int>(rng() % 7);
    std::string name = tag + std::to_string(i);
    if (existing.empty() || op == 0) {
      std::string sub = dir + "/d" + std::to_string(rng() % 4);
      MakeDirs(sub);
      WriteFile(sub + "/" + name + ".txt", "created by " + tag + " " + std::to_string(rng()));
      continue;
    }
    const fs::path& f = existing[rng() % existing.size()];
    switch (op) {
      case 1:
        WriteFile(f.string(), "edited by " + tag + " " + std::to_string(rng()));
        break;
      case 2:
        fs::remove(f);
        break;
      case 3:
        fs::rename(f, f.parent_path() / (name + "-renamed"));
        break;
      case 4:
        chmod(f.c_str(), (rng() % 2) ? 0600 : 0755);
        break;
      case 5:
        fs::create_symlink(f.filename(), f.parent_path() / (name + ".lnk"));
        break;
      default:
        WriteFile(f.string(), std::string(1000 + rng() % 200000, char('a' + rng() % 26)));
    }
  }
}

TEST_CASE("Repair: random changes made on all three agents at once converge",
          "[integration][repair]") {
  Cluster c(3);
  c.StartAll();
  uint32_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < 3; ++i) {
      RandomOps(c[i].data_dir(), rng, 25, c[i].name() + "r" + std::to_string(round) + "-");
    }
  }
  if (!c.WaitConverged(seconds(30))) FAIL(c.Diagnose());
  // Nothing of ours is left in the data dirs.
  for (auto& a : c.agents) {
    for (auto& e : fs::recursive_directory_iterator(a->data_dir())) {
      CHECK(e.path().string().find("gossync-tmp") == std::string::npos);
    }
  }
}

TEST_CASE("Repair: a deleted file does not come back, also after a restart",
          "[integration][repair]") {
  Cluster c(3);
  c.StartAll();
  WriteFile(c[0].data_dir() + "/doomed.txt", "soon gone");
  WriteFile(c[0].data_dir() + "/kept.txt", "stays");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  // c[2] goes away; the file is deleted elsewhere; c[2] comes back.
  REQUIRE(c[2].Stop() == 0);
  fs::remove(c[0].data_dir() + "/doomed.txt");
  REQUIRE(WaitFor([&] { return !fs::exists(c[1].data_dir() + "/doomed.txt"); }, seconds(10)));
  c[2].Start();
  REQUIRE(c[2].WaitReady());
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  for (auto& a : c.agents) CHECK_FALSE(fs::exists(a->data_dir() + "/doomed.txt"));
  // And the node that deleted it restarting changes nothing either.
  REQUIRE(c[0].Stop() == 0);
  c[0].Start();
  REQUIRE(c[0].WaitReady());
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  for (auto& a : c.agents) {
    CHECK_FALSE(fs::exists(a->data_dir() + "/doomed.txt"));
    CHECK(ReadFile(a->data_dir() + "/kept.txt") == "stays");
  }
}

TEST_CASE("Repair: concurrent edits on both sides of a cut keep both versions",
          "[integration][repair]") {
  Cluster c(3);
  c.StartAll();
  WriteFile(c[0].data_dir() + "/shared.csv", "original\n");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  // a and b cannot talk while both edit: b is stopped while a edits, and
  // b's edit is made to its files while the agent itself is stopped.
  c[1].Pause();
  WriteFile(c[0].data_dir() + "/shared.csv", "edited on a\n");
  REQUIRE(WaitFor([&] { return ReadFile(c[2].data_dir() + "/shared.csv") == "edited on a\n"; },
                  seconds(10)));
  WriteFile(c[1].data_dir() + "/shared.csv", "edited on b\n");
  c[1].Resume();
  if (!c.WaitConverged(seconds(30))) FAIL(c.Diagnose());
  for (auto& a : c.agents) {
    std::vector<std::string> contents;
    for (auto& e : fs::directory_iterator(a->data_dir())) {
      contents.push_back(e.path().filename().string() + "=" + ReadFile(e.path()));
    }
    std::sort(contents.begin(), contents.end());
    INFO(a->name());
    REQUIRE(contents.size() == 2);
    std::string all = contents[0] + contents[1];
    CHECK(all.find("edited on a") != std::string::npos);
    CHECK(all.find("edited on b") != std::string::npos);
    CHECK(fs::exists(a->data_dir() + "/shared.csv"));
  }
  RunResult r = c[0].Cli({"conflicts", "--json"});
  REQUIRE(r.exit_code == 0);
  nlohmann::json list = nlohmann::json::parse(r.out);
  REQUIRE(list.size() == 1);
  CHECK(list[0]["original"] == "shared.csv");
}

TEST_CASE("Repair: a peer from another CA, or with a name that is not its own, gets nothing",
          "[integration][repair]") {
  Cluster c(2);
  c.StartAll();
  WriteFile(c[0].data_dir() + "/secret.txt", "for members only");
  if (!c.WaitConverged()) FAIL(c.Diagnose());

  // Same gossip keyring, so it joins the member list, but its certificate
  // comes from another CA: every repair with it fails the handshake.
  TempDir other;
  ClusterSecrets rogue_ca(other / "secrets");
  AgentOptions o = Named("rogue");
  o.gossip_toml = kFastGossip;
  o.seeds = {c[0].gossip_address()};
  Agent rogue(other.path(), &rogue_ca, o);
  WriteFile(rogue.data_dir() + "/planted.txt", "from the rogue");
  // Share the cluster's gossip key with it.
  std::string cfg = ReadFile(rogue.config_path());
  size_t at = cfg.find(rogue_ca.keyring());
  cfg.replace(at, rogue_ca.keyring().size(), c.secrets.keyring());
  WriteFile(rogue.config_path(), cfg);
  rogue.Start();
  REQUIRE(rogue.WaitReady());
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json s = c[0].Status();
        return s["counters"]["repair"]["aborts"].value("handshake", 0) +
                   s["counters"]["repair"].value("sessions_failed", 0) >
               0;
      },
      seconds(10)));
  CHECK_FALSE(fs::exists(rogue.data_dir() + "/secret.txt"));
  for (auto& a : c.agents) CHECK_FALSE(fs::exists(a->data_dir() + "/planted.txt"));

  // A member's certificate used under another name: the TLS name check fails.
  TempDir third;
  AgentOptions m = Named("mallory");
  m.gossip_toml = kFastGossip;
  m.seeds = {c[0].gossip_address()};
  Agent mallory(third.path(), &c.secrets, m);
  WriteFile(mallory.data_dir() + "/planted2.txt", "x");
  std::string mcfg = ReadFile(mallory.config_path());
  for (const char* ext : {".crt\"", ".key\""}) {
    std::string from = "mallory" + std::string(ext), to = "anode" + std::string(ext);
    mcfg.replace(mcfg.find(from), from.size(), to);
  }
  WriteFile(mallory.config_path(), mcfg);
  RunResult check = Run({GossyncdPath(), "--check-config", "--config", mallory.config_path()});
  CHECK(check.exit_code == 2);  // it refuses to start with another node's certificate
  CHECK(check.err.find("names node \"anode\"") != std::string::npos);
  for (auto& a : c.agents) CHECK_FALSE(fs::exists(a->data_dir() + "/planted2.txt"));
}

}  // namespace
}  // namespace gossync::testutil
