// [[hook]] commands on real agents (issue 5): run once per batch on the
// agents that received the change, with the changed paths on stdin.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/integration/ops_cluster.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using ops::OpsCluster;
using std::chrono::seconds;

nlohmann::json Hooks(const Agent& a) {
  return a.Status()
      .value("counters", nlohmann::json::object())
      .value("hooks", nlohmann::json::object());
}

// A hook's counter ("runs", "failed", ...) on agent `a`; -1 if unknown.
int64_t HookCount(const Agent& a, size_t hook, const char* key) {
  nlohmann::json h = Hooks(a).value("hooks", nlohmann::json::array());
  if (h.size() <= hook) return -1;
  return h[hook].value(key, int64_t(-1));
}

// No session is running and no hook is pending or running on any agent.
bool Quiet(OpsCluster& c) {
  for (auto& a : c.agents) {
    nlohmann::json s = a->Status();
    if (!s.contains("counters")) return false;
    if (s["counters"]["repair"].value("sessions_active", 1) != 0) return false;
    if (s["counters"]["hooks"].value("running", 1) != 0) return false;
    for (const auto& h : s["counters"]["hooks"]["hooks"]) {
      if (h.value("pending", 1) != 0) return false;
    }
  }
  return true;
}

TEST_CASE("Hooks: a change under the pattern runs the hook once on each other agent",
          "[integration][hooks]") {
  TempDir logs;
  auto hook_log = [&](int i) { return logs / ("hook-" + std::to_string(i) + ".log"); };
  OpsCluster c(3, [&](int i, AgentOptions& o) {
    o.extra_toml = "[[hook]]\npattern = \"certs/\"\ncommand = \"{ echo RUN; cat; } >> " +
                   hook_log(i) +
                   "\"\n"
                   "[[hook]]\npattern = \"broken/*.txt\"\n"
                   "command = \"echo a failing hook >&2; exit 7\"\ntimeout_s = 5\n";
  });
  c.StartAll();
  REQUIRE(c.WaitMembers());

  // Two files under certs/ appear at once on agent 0: a directory moved in.
  MakeDirs(logs / "stage/certs");
  WriteFile(logs / "stage/certs/a.pem", "A");
  WriteFile(logs / "stage/certs/b.pem", "B");
  fs::rename(logs / "stage/certs", c[0].data_dir() + "/certs");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  REQUIRE(WaitFor([&] { return Quiet(c); }, seconds(30)));
  for (int i : {1, 2}) {
    INFO("agent " << i << "\n" << c.Diagnose());
    CHECK(HookCount(c[i], 0, "runs") == 1);
    CHECK(HookCount(c[i], 0, "succeeded") == 1);
    CHECK(ReadFile(hook_log(i)) == "RUN\ncerts/a.pem\ncerts/b.pem\n");
  }
  // The agent where the change was made locally runs nothing: hooks follow repairs.
  CHECK(HookCount(c[0], 0, "runs") == 0);
  CHECK_FALSE(fs::exists(hook_log(0)));

  // A change outside the pattern runs no hook.
  WriteFile(c[1].data_dir() + "/other.txt", "x");
  MakeDirs(c[1].data_dir() + "/notcerts");
  WriteFile(c[1].data_dir() + "/notcerts/c.pem", "C");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  REQUIRE(WaitFor([&] { return Quiet(c); }, seconds(30)));
  for (int i : {0, 1, 2}) {
    CHECK(HookCount(c[i], 0, "runs") == (i == 0 ? 0 : 1));
    CHECK(HookCount(c[i], 1, "runs") == 0);
  }

  // An edit and a delete under the pattern on agent 2: one more run on 0 and 1.
  WriteFile(c[2].data_dir() + "/certs/a.pem", "A2");
  fs::remove(c[2].data_dir() + "/certs/b.pem");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  REQUIRE(WaitFor(
      [&] { return HookCount(c[0], 0, "succeeded") >= 1 && HookCount(c[1], 0, "succeeded") >= 2; },
      seconds(30)));
  CHECK(ReadFile(hook_log(0)).find("RUN\ncerts/a.pem\n") == 0);
  std::string log1 = ReadFile(hook_log(1));
  CHECK(log1.find("certs/a.pem", log1.find("RUN", 1)) != std::string::npos);

  // A failing hook is logged and counted; sync goes on.
  MakeDirs(c[0].data_dir() + "/broken");
  WriteFile(c[0].data_dir() + "/broken/x.txt", "x");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  REQUIRE(WaitFor(
      [&] { return HookCount(c[1], 1, "failed") == 1 && HookCount(c[2], 1, "failed") == 1; },
      seconds(30)));
  CHECK(Hooks(c[1]).value("failed", 0) == 1);
  CHECK(c[1].log().find("hook_failed") != std::string::npos);
  CHECK(c[1].log().find("exit=7") != std::string::npos);
  WriteFile(c[0].data_dir() + "/after-failure.txt", "still syncing");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
}

TEST_CASE("Hooks: SIGHUP installs new hooks and refuses a bad pattern", "[integration][hooks]") {
  TempDir logs;
  OpsCluster c(2);
  c.StartAll();
  REQUIRE(c.WaitMembers());
  CHECK(Hooks(c[1]).value("hooks", nlohmann::json::array()).empty());

  std::string config = ReadFile(c[1].config_path());
  std::string hook =
      "\n[[hook]]\npattern = \"*.conf\"\ncommand = \"cat >> " + (logs / "conf.log") + "\"\n";
  WriteFile(c[1].config_path(), config + hook);
  kill(c[1].pid(), SIGHUP);
  REQUIRE(WaitFor([&] { return Hooks(c[1]).value("hooks", nlohmann::json::array()).size() == 1; },
                  seconds(10)));

  // A bad pattern: refused, the hook above stays.
  WriteFile(c[1].config_path(),
            config + hook + "\n[[hook]]\npattern = \"[oops\"\ncommand = \"true\"\n");
  kill(c[1].pid(), SIGHUP);
  REQUIRE(
      WaitFor([&] { return c[1].log().find("reload_refused") != std::string::npos; }, seconds(10)));
  CHECK(c[1].log().find("hook[1].pattern") != std::string::npos);
  CHECK(Hooks(c[1])["hooks"].size() == 1);

  WriteFile(c[0].data_dir() + "/app.conf", "x=1");
  if (!c.WaitConverged()) FAIL(c.Diagnose());
  REQUIRE(WaitFor([&] { return ReadFile(logs / "conf.log") == "app.conf\n"; }, seconds(30)));
}

}  // namespace
}  // namespace gossync::testutil
