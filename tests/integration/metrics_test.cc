// Prometheus metrics over HTTP from a real agent (issue 5).
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>

#include "tests/integration/ops_cluster.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using ops::HttpGet;
using ops::HttpRequest;
using ops::OpsCluster;
using std::chrono::seconds;

struct Scrape {
  std::string status_line;
  std::map<std::string, std::string> headers;
  std::map<std::string, double> samples;  // "name{labels}" -> value
  std::map<std::string, std::string> types;
};

Scrape Parse(const std::string& response) {
  Scrape s;
  size_t head_end = response.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  std::istringstream head(response.substr(0, head_end));
  std::getline(head, s.status_line);
  if (!s.status_line.empty() && s.status_line.back() == '\r') s.status_line.pop_back();
  std::string h;
  while (std::getline(head, h)) {
    if (!h.empty() && h.back() == '\r') h.pop_back();
    size_t colon = h.find(": ");
    if (colon != std::string::npos) s.headers[h.substr(0, colon)] = h.substr(colon + 2);
  }
  std::string body = response.substr(head_end + 4);
  CHECK(std::to_string(body.size()) == s.headers["Content-Length"]);
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (-?[0-9.e+]+|NaN|\+Inf|-Inf)$)");
  static const std::regex kType(R"(^# TYPE (\S+) (counter|gauge|summary)$)");
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (std::regex_match(line, m, kType)) {
      CHECK(s.types.count(m[1]) == 0);
      s.types[m[1]] = m[2];
      continue;
    }
    INFO(line);
    REQUIRE(std::regex_match(line, m, kSample));
    s.samples[m[1]] = std::stod(m[3]);
  }
  return s;
}

double Get(const Scrape& s, const std::string& key) {
  auto it = s.samples.find(key);
  if (it == s.samples.end()) FAIL("no sample " << key);
  return it->second;
}

TEST_CASE("Metrics: a scrape parses and follows the agent's state", "[integration][metrics]") {
  int port = FreePort();
  OpsCluster c(2, [&](int i, AgentOptions& o) {
    if (i == 0) o.extra_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  });
  c.StartAll();
  REQUIRE(c.WaitMembers());
  MakeDirs(c[1].data_dir() + "/d");
  WriteFile(c[1].data_dir() + "/d/one.txt", "1");
  WriteFile(c[1].data_dir() + "/two.txt", "22");
  if (!c.WaitConverged()) FAIL(c.Diagnose());

  // Wait until the agent's own view says converged (gossip carried the new root).
  REQUIRE(WaitFor([&] { return c[0].Status().value("converged", false); }, seconds(20)));
  Scrape s = Parse(HttpGet(port, "/metrics"));
  CHECK(s.status_line == "HTTP/1.1 200 OK");
  CHECK(s.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8");
  nlohmann::json st = c[0].Status();
  CHECK(Get(s, "gossync_entries{kind=\"file\"}") == st["files"].get<double>());
  CHECK(Get(s, "gossync_entries{kind=\"file\"}") == 2);
  CHECK(Get(s, "gossync_entries{kind=\"directory\"}") == 1);
  CHECK(Get(s, "gossync_members{state=\"alive\"}") == 1);
  CHECK(Get(s, "gossync_ready") == 1);
  CHECK(Get(s, "gossync_repair_sessions_total{result=\"ok\"}") >= 1);
  CHECK(Get(s, "gossync_repair_entries_applied_total") >= 3);
  CHECK(Get(s, "gossync_repair_bytes_total{direction=\"received\"}") >= 3);
  CHECK(Get(s, "gossync_repair_session_duration_seconds_count{result=\"ok\"}") >= 1);
  CHECK(Get(s, "gossync_scans_total") >= 1);
  CHECK(Get(s, "gossync_scan_duration_seconds_count") >= 1);
  CHECK(Get(s, "gossync_root_age_seconds") >= 0);
  CHECK(Get(s, "gossync_peer_agreement_age_seconds{peer=\"bnode\"}") < 5);
  CHECK(s.samples.count("gossync_build_info{node=\"anode\",version=\"" +
                        st["version"].get<std::string>() + "\"}") == 1);
  CHECK(s.types["gossync_repair_sessions_total"] == "counter");
  CHECK(s.types["gossync_scan_duration_seconds"] == "summary");

  // Other paths and methods, and a request head that is too large.
  CHECK(HttpGet(port, "/").rfind("HTTP/1.1 404 ", 0) == 0);
  CHECK(HttpRequest(port, "DELETE /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405 ", 0) == 0);
  CHECK(HttpRequest(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n")
            .rfind("HTTP/1.1 431 ", 0) == 0);
  // A client that never finishes its request is cut off (MetricsServer::kRequestTimeoutMs).
  auto t0 = std::chrono::steady_clock::now();
  CHECK(HttpRequest(port, "GET /metrics HTTP/1.1\r\n").empty());
  CHECK(std::chrono::steady_clock::now() - t0 < seconds(9));

  // The agent still serves after all that.
  CHECK(HttpGet(port, "/metrics").rfind("HTTP/1.1 200 ", 0) == 0);
}

TEST_CASE("Metrics: agreement age grows for a peer that stops agreeing", "[integration][metrics]") {
  int port = FreePort();
  OpsCluster c(2, [&](int i, AgentOptions& o) {
    if (i == 0) {
      o.extra_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(port) + "\"\n";
      // A paused peer stays suspect (not dead) for the whole test.
      o.gossip_toml = std::regex_replace(o.gossip_toml, std::regex("suspicion_mult = 4"),
                                         "suspicion_mult = 100");
    }
  });
  c.StartAll();
  REQUIRE(c.WaitMembers());
  REQUIRE(WaitFor([&] { return c[0].Status().value("converged", false); }, seconds(20)));
  c[1].Pause();
  WriteFile(c[0].data_dir() + "/new.txt", "n");
  REQUIRE(WaitFor(
      [&] {
        Scrape s = Parse(HttpGet(port, "/metrics"));
        return Get(s, "gossync_peer_agreement_age_seconds{peer=\"bnode\"}") >= 2 &&
               Get(s, "gossync_converged") == 0;
      },
      seconds(20)));
  c[1].Resume();
  REQUIRE(WaitFor(
      [&] {
        return Get(Parse(HttpGet(port, "/metrics")),
                   "gossync_peer_agreement_age_seconds{peer=\"bnode\"}") < 2;
      },
      seconds(30)));
}

TEST_CASE("Temp GC: stale temp files of abandoned transfers are removed at start",
          "[integration][metrics]") {
  int port = FreePort();
  OpsCluster c(1, [&](int, AgentOptions& o) {
    o.extra_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  });
  // What a transfer abandoned two days ago leaves, and one from a minute ago.
  std::string tmp = c[0].state_dir() + "/tmp";
  MakeDirs(tmp);
  std::string stale = tmp + "/" + std::string(64, 'a') + ".gossync-tmp";
  std::string fresh = tmp + "/" + std::string(64, 'b') + ".gossync-tmp";
  WriteFile(stale, "partial");
  WriteFile(fresh, "partial");
  timespec old[2] = {{time(nullptr) - 2 * 86400, 0}, {time(nullptr) - 2 * 86400, 0}};
  REQUIRE(utimensat(AT_FDCWD, stale.c_str(), old, 0) == 0);
  c.StartAll();
  REQUIRE(WaitFor([&] { return !fs::exists(stale); }, seconds(10)));
  CHECK(fs::exists(fresh));
  CHECK(c[0].Status()["counters"]["repair"]["temp_files_removed"] == 1);
  CHECK(Get(Parse(HttpGet(port, "/metrics")), "gossync_temp_files_removed_total") == 1);
  CHECK(c[0].log().find("temp_gc removed=1") != std::string::npos);
}

}  // namespace
}  // namespace gossync::testutil
