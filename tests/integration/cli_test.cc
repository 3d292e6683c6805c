// The gossync CLI against real agents (issue 5): diff, sync, conflicts and
// status --wait-converged, with their exit codes (docs/cli.md).
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <set>

#include "tests/integration/ops_cluster.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using ops::OpsCluster;
using std::chrono::seconds;

std::string MemberState(const Agent& a, const std::string& peer) {
  for (const auto& m : a.Status().value("members", nlohmann::json::array())) {
    if (m.value("name", "") == peer) return m.value("state", "");
  }
  return "";
}

// Gives agent `i` a gossip key of its own (SIGHUP): it and the others can no
// longer read each other's gossip and soon hold each other dead, so nothing
// repairs by itself, while repair (TLS, the same CA) still works when asked.
void SplitGossip(OpsCluster& c, size_t i) {
  std::string keys = c.tmp / "split.keys";
  REQUIRE(Cli({"keygen", "--out", keys}).exit_code == 0);
  std::string config = ReadFile(c[i].config_path());
  size_t at = config.find(c.secrets.keyring());
  REQUIRE(at != std::string::npos);
  config.replace(at, c.secrets.keyring().size(), keys);
  WriteFile(c[i].config_path(), config);
  kill(c[i].pid(), SIGHUP);
  std::string a = c[0].name(), b = c[i].name();
  if (!WaitFor([&] { return MemberState(c[0], b) == "dead" && MemberState(c[i], a) == "dead"; },
               seconds(30))) {
    FAIL(c.Diagnose());
  }
}

std::set<std::string> Paths(const nlohmann::json& list) {
  std::set<std::string> out;
  for (const auto& e : list) out.insert(e.value("path", ""));
  return out;
}

TEST_CASE(
    "CLI: diff lists what would move and moves nothing then sync moves it and conflicts lists the "
    "copy",
    "[integration][cli]") {
  OpsCluster c(2);
  c.StartAll();
  REQUIRE(c.WaitMembers());
  SplitGossip(c, 1);

  WriteFile(c[0].data_dir() + "/from-a.txt", "a");
  WriteFile(c[1].data_dir() + "/from-b.txt", "b");
  WriteFile(c[0].data_dir() + "/same.txt", "written on a");
  WriteFile(c[1].data_dir() + "/same.txt", "written on b, longer");
  for (int i : {0, 1}) {
    REQUIRE(WaitFor([&] { return c[i].Status().value("files", 0) == 2; }, seconds(10)));
  }
  std::string root_a = c[0].Status()["root"], root_b = c[1].Status()["root"];
  REQUIRE(root_a != root_b);

  // diff: what would move, both ways; nothing moves.
  RunResult d = c[0].Cli({"diff", "bnode", "--json"});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  nlohmann::json dj = nlohmann::json::parse(d.out);
  CHECK(dj["peer"] == "bnode");
  CHECK(Paths(dj["pull"]).count("from-b.txt") == 1);
  CHECK(Paths(dj["push"]).count("from-a.txt") == 1);
  CHECK(Paths(dj["conflict"]).count("same.txt") == 1);
  RunResult human = c[0].Cli({"diff", "bnode"});
  CHECK(human.exit_code == 0);
  CHECK(human.out.find("from-b.txt") != std::string::npos);
  CHECK_FALSE(fs::exists(c[0].data_dir() + "/from-b.txt"));
  CHECK_FALSE(fs::exists(c[1].data_dir() + "/from-a.txt"));
  CHECK(ReadFile(c[0].data_dir() + "/same.txt") == "written on a");
  CHECK(c[0].Status()["root"] == root_a);
  CHECK(c[1].Status()["root"] == root_b);
  CHECK(c[0].Cli({"conflicts", "--json"}).out.find("sync-conflict") == std::string::npos);

  // Unknown peers and bad usage.
  RunResult unknown = c[0].Cli({"diff", "nosuch"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("unknown peer") != std::string::npos);
  CHECK(c[0].Cli({"diff"}).exit_code == 2);

  // sync PEER: returns the session's result; both sides have both files.
  RunResult s = c[0].Cli({"sync", "bnode", "--json", "--timeout", "30"});
  INFO(s.out << s.err);
  REQUIRE(s.exit_code == 0);
  nlohmann::json sj = nlohmann::json::parse(s.out);
  REQUIRE(sj["results"].size() == 1);
  CHECK(sj["results"][0]["peer"] == "bnode");
  CHECK(sj["results"][0]["ok"] == true);
  CHECK(sj["results"][0]["entries_applied"].get<int>() >= 1);
  CHECK(ReadFile(c[0].data_dir() + "/from-b.txt") == "b");
  REQUIRE(WaitFor([&] { return fs::exists(c[1].data_dir() + "/from-a.txt"); }, seconds(10)));

  // conflicts: the concurrent edits of same.txt left a copy, the same on both.
  auto conflicts = [&](const Agent& a) {
    RunResult r = a.Cli({"conflicts", "--json"});
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
  };
  REQUIRE(WaitFor([&] { return conflicts(c[0]).size() == 1 && conflicts(c[1]).size() == 1; },
                  seconds(10)));
  nlohmann::json cj = conflicts(c[0]);
  CHECK(cj[0]["original"] == "same.txt");
  CHECK(std::regex_match(cj[0]["path"].get<std::string>(),
                         std::regex(R"(same\.sync-conflict-\d{8}-\d{6}-[a-z]node\.txt)")));
  CHECK(conflicts(c[1])[0]["path"] == cj[0]["path"]);
  RunResult ch = c[0].Cli({"conflicts"});
  CHECK(ch.exit_code == 0);
  CHECK(ch.out.find(cj[0]["path"].get<std::string>()) != std::string::npos);
  CHECK(c.Converged());

  // Nothing left to move: a second diff is empty.
  nlohmann::json again = nlohmann::json::parse(c[0].Cli({"diff", "bnode", "--json"}).out);
  CHECK(again["pull"].empty());
  CHECK(again["push"].empty());
}

TEST_CASE("CLI: status --wait-converged exits 4 while a peer is paused and 0 once it is back",
          "[integration][cli]") {
  OpsCluster c(2, [](int, AgentOptions& o) {
    // A paused peer stays suspect (alive to the convergence check) for the whole test.
    o.gossip_toml =
        std::regex_replace(o.gossip_toml, std::regex("suspicion_mult = 4"), "suspicion_mult = 100");
  });
  c.StartAll();
  REQUIRE(c.WaitMembers());
  RunResult ok = c[0].Cli({"status", "--wait-converged", "--timeout", "30"});
  REQUIRE(ok.exit_code == 0);

  c[1].Pause();
  WriteFile(c[0].data_dir() + "/new.txt", "n");
  REQUIRE(WaitFor([&] { return c[0].Status().value("files", 0) == 1; }, seconds(10)));
  auto t0 = std::chrono::steady_clock::now();
  RunResult timeout = c[0].Cli({"status", "--wait-converged", "--timeout", "2"});
  auto took = std::chrono::steady_clock::now() - t0;
  INFO(timeout.out << timeout.err);
  CHECK(timeout.exit_code == 4);
  CHECK(timeout.err.find("not converged") != std::string::npos);
  CHECK(took >= seconds(2));
  CHECK(took < seconds(15));
  RunResult json = c[0].Cli({"status", "--wait-converged", "--timeout", "1", "--json"});
  CHECK(json.exit_code == 4);
  CHECK(nlohmann::json::parse(json.out)["converged"] == false);

  c[1].Resume();
  for (int i : {0, 1}) {
    RunResult r = c[i].Cli({"status", "--wait-converged", "--timeout", "60"});
    INFO(r.out << r.err << c.Diagnose());
    CHECK(r.exit_code == 0);
  }
  CHECK(ReadFile(c[1].data_dir() + "/new.txt") == "n");

  // An agent that is not running: exit 3.
  c[1].Stop();
  CHECK(c[1].Cli({"status"}).exit_code == 3);
}

}  // namespace
}  // namespace gossync::testutil
