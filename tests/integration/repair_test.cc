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
  INFO(c.Diagnose());
  REQUIRE(c.WaitConverged());
  CHECK(ReadFile(c[2].data_dir() + "/dir/sub/b.bin").size() == 300 * 1024);
  CHECK(fs::read_symlink(c[1].data_dir() + "/link") == "a.txt");

  // Edit, rename, chmod and delete on another agent.
  WriteFile(c[1].data_dir() + "/a.txt", "edited on b");
  fs::rename(c[1].data_dir() + "/dir/sub/b.bin", c[1].data_dir() + "/dir/b-renamed.bin");
  REQUIRE(chmod((c[1].data_dir() + "/a.txt").c_str(), 0600) == 0);
  fs::remove(c[1].data_dir() + "/link");
  REQUIRE(c.WaitConverged());
  CHECK(ReadFile(c[0].data_dir() + "/a.txt") == "edited on b");
  CHECK_FALSE(fs::exists(c[2].data_dir() + "/link"));
  CHECK_FALSE(fs::exists(c[2].data_dir() + "/dir/sub/b.bin"));
  CHECK(fs::exists(c[2].data_dir() + "/dir/b-renamed.bin"));
}

}  // namespace
}  // namespace gossync::testutil
