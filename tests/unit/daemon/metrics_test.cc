// Metrics rendering and the HTTP answers of the metrics server, without sockets.
#include "agent/daemon/metrics.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "agent/daemon/metrics_server.h"

namespace gossync::daemon {
namespace {

// Parses the text format strictly enough to catch malformed output: every
// line is a comment (# HELP / # TYPE NAME counter|gauge|summary) or
// `name{labels} value`; every sample belongs to the family declared last;
// no family is declared twice. Returns "name{labels}" -> value.
std::map<std::string, double> Parse(const std::string& text) {
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary)$)");
  std::map<std::string, double> out;
  std::set<std::string> families;
  std::string family;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (std::regex_match(line, m, kType)) {
      family = m[1];
      INFO(line);
      REQUIRE(families.insert(family).second);
      continue;
    }
    INFO(line);
    REQUIRE(std::regex_match(line, m, kSample));
    std::string name = m[1];
    REQUIRE(name.rfind(family, 0) == 0);
    std::string v = m[5];
    out[name + std::string(m[2])] = v == "+Inf" ? INFINITY : std::stod(v);
  }
  return out;
}

nlohmann::json SampleStatus() {
  return nlohmann::json::parse(R"({
    "node": "alpha", "version": "0.1.0", "ready": true, "uptime_s": 42,
    "root_changed_ms": 1000000, "converged": false,
    "files": 10, "directories": 3, "symlinks": 1, "tombstones": 4,
    "scan": {"full_scans": 2, "last_scan_duration_ms": 1500, "pending_paths": 0,
             "hashed_files": 12, "hashed_bytes": 4096, "watcher_overflows": 0,
             "walk_errors": 0, "rejected": 0},
    "members": [],
    "counters": {
      "gossip": {"packets_in": 5, "packets_out": 6, "bytes_in": 500, "bytes_out": 600,
                 "drops": {"open_auth": 3, "replayed": 1},
                 "members": {"alive": 2, "suspect": 0, "dead": 1, "left": 0},
                 "udp": {"oversize": 0, "queue_full": 0, "send_errors": 0, "receive_errors": 0},
                 "suspicions": 1, "refutations": 0},
      "repair": {"sessions_ok": 7, "sessions_failed": 2, "sessions_active": 1, "refused": 0,
                 "entries_applied": 30, "bytes_received": 1000, "bytes_sent": 2000,
                 "conflicts": 1, "temp_files_removed": 0,
                 "aborts": {"idle_timeout": 2}},
      "hooks": {"runs": 3, "succeeded": 2, "failed": 1, "timeouts": 0, "running": 0,
                "hooks": [{"pattern": "certs/\"x\"", "runs": 3, "failed": 1, "timeouts": 0,
                           "seconds_sum": 0.5}]}
    }
  })");
}

TEST_CASE("Metrics: the exposition parses and carries the status numbers", "[metrics]") {
  AgreementTracker agreement;
  core::MemberView beta, gamma;
  beta.name = "beta";
  beta.has_root = true;
  beta.root[0] = 1;
  gamma.name = "gamma";
  gamma.has_root = true;
  gamma.root[0] = 2;
  core::Hash256 ours{};
  ours[0] = 1;
  agreement.Observe(1'000'000, ours, {beta, gamma});
  MetricsExtras x;
  x.agreement = &agreement;
  x.scan.Add(1.5);
  x.scan.Add(0.5);
  x.repair["ok"].Add(2.0);
  std::string text = RenderMetrics(SampleStatus(), x, 1'010'000);
  INFO(text);
  std::map<std::string, double> m = Parse(text);
  CHECK(m.at("gossync_ready") == 1);
  CHECK(m.at("gossync_root_age_seconds") == 10);
  CHECK(m.at("gossync_members{state=\"alive\"}") == 2);
  CHECK(m.at("gossync_members{state=\"dead\"}") == 1);
  CHECK(m.at("gossync_entries{kind=\"file\"}") == 10);
  CHECK(m.at("gossync_entries{kind=\"directory\"}") == 3);
  CHECK(m.at("gossync_tombstones") == 4);
  CHECK(m.at("gossync_repair_sessions_total{result=\"ok\"}") == 7);
  CHECK(m.at("gossync_repair_sessions_total{result=\"failed\"}") == 2);
  CHECK(m.at("gossync_repair_sessions_active") == 1);
  CHECK(m.at("gossync_repair_bytes_total{direction=\"received\"}") == 1000);
  CHECK(m.at("gossync_repair_aborts_total{counter=\"idle_timeout\"}") == 2);
  CHECK(m.at("gossync_gossip_drops_total{reason=\"open_auth\"}") == 3);
  CHECK(m.at("gossync_scan_duration_seconds_sum") == 2.0);
  CHECK(m.at("gossync_scan_duration_seconds_count") == 2);
  CHECK(m.at("gossync_scan_last_duration_seconds") == 1.5);
  CHECK(m.at("gossync_repair_session_duration_seconds_count{result=\"ok\"}") == 1);
  // beta agreed at 1,000,000 (10 s ago); gamma never did: counted from first sight.
  CHECK(m.at("gossync_peer_agreement_age_seconds{peer=\"beta\"}") == 10);
  CHECK(m.at("gossync_peer_agreement_age_seconds{peer=\"gamma\"}") == 10);
  // The pattern's quotes are escaped in the label.
  CHECK(m.at("gossync_hook_runs_total{hook=\"0\",pattern=\"certs/\\\"x\\\"\"}") == 3);
  CHECK(m.at("gossync_hook_failures_total{hook=\"0\",pattern=\"certs/\\\"x\\\"\"}") == 1);
}

TEST_CASE("Metrics: a starting agent with an empty status still renders valid text", "[metrics]") {
  std::string text = RenderMetrics(nlohmann::json::object(), MetricsExtras{}, 0);
  std::map<std::string, double> m = Parse(text);
  CHECK(m.count("gossync_build_info{node=\"\",version=\"\"}") == 1);
  CHECK(m.count("gossync_ready") == 0);
}

TEST_CASE("AgreementTracker: agreement is now and the previous root counts until it changed",
          "[metrics]") {
  AgreementTracker t;
  core::MemberView b;
  b.name = "b";
  b.has_root = true;
  core::Hash256 r1{}, r2{};
  r1[0] = 1;
  r2[0] = 2;
  b.root = r1;
  t.Observe(100, r1, {b});
  CHECK(t.LastAgreementMs("b") == 100);
  // Our root moves to r2; b still advertises r1: it agreed until now.
  t.Observe(200, r2, {b});
  CHECK(t.LastAgreementMs("b") == 200);
  // Later samples with b still on r1: no more agreement.
  t.Observe(300, r2, {b});
  CHECK(t.LastAgreementMs("b") == 200);
  // A dead member does not agree, whatever it last advertised.
  b.root = r2;
  b.state = core::MemberState::kDead;
  t.Observe(400, r2, {b});
  CHECK(t.LastAgreementMs("b") == 200);
  // Gone from the member list: forgotten.
  t.Observe(500, r2, {});
  CHECK(t.LastAgreementMs("b") == 0);
}

TEST_CASE("MetricsWriter: values and label escapes follow the text format", "[metrics]") {
  CHECK(FormatValue(3) == "3");
  CHECK(FormatValue(0.25) == "0.25");
  CHECK(FormatValue(INFINITY) == "+Inf");
  CHECK(FormatValue(NAN) == "NaN");
  CHECK(EscapeLabelValue("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
}

TEST_CASE("MetricsServer: GET /metrics answers the text and other requests get 4xx", "[metrics]") {
  int renders = 0;
  auto render = [&] {
    ++renders;
    return std::string("gossync_ready 1\n");
  };
  HttpResponse ok = AnswerHttp("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render);
  CHECK(ok.code == 200);
  CHECK(ok.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(ok.body == "gossync_ready 1\n");
  std::string wire = SerializeHttp(ok);
  CHECK(wire.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(wire.find("Content-Length: 16\r\n") != std::string::npos);
  CHECK(wire.size() - wire.find("\r\n\r\n") - 4 == 16);

  HttpResponse head = AnswerHttp("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", render);
  CHECK(head.code == 200);
  std::string head_wire = SerializeHttp(head);
  CHECK(head_wire.find("Content-Length: 16\r\n") != std::string::npos);
  CHECK(head_wire.substr(head_wire.size() - 4) == "\r\n\r\n");

  CHECK(AnswerHttp("GET / HTTP/1.1\r\n\r\n", render).code == 404);
  CHECK(AnswerHttp("GET /metricsx HTTP/1.1\r\n\r\n", render).code == 404);
  CHECK(AnswerHttp("POST /metrics HTTP/1.1\r\n\r\n", render).code == 405);
  CHECK(AnswerHttp("garbage\r\n\r\n", render).code == 400);
  CHECK(AnswerHttp("GET /metrics SPDY/3\r\n\r\n", render).code == 400);
  CHECK(AnswerHttp("GET  /metrics HTTP/1.1\r\n\r\n", render).code == 400);
  CHECK(renders == 2);  // only the two good requests rendered
}

}  // namespace
}  // namespace gossync::daemon
