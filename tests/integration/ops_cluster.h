// Shared by the operator-surface integration tests (hooks, metrics, cli,
// quickstart): a small cluster of real agents and a raw HTTP GET.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/testutil/cluster.h"

namespace gossync::testutil::ops {

using std::chrono::milliseconds;
using std::chrono::seconds;

inline const char* kFastGossip =
    "interval_ms = 200\nprobe_interval_ms = 250\nprobe_timeout_ms = 100\nsuspicion_mult = 4\n";

struct OpsCluster {
  TempDir tmp;
  ClusterSecrets secrets{tmp / "secrets"};
  std::vector<std::unique_ptr<Agent>> agents;

  // `customize(i, options)` may add config to agent i before it is written.
  explicit OpsCluster(int n, const std::function<void(int, AgentOptions&)>& customize = nullptr) {
    for (int i = 0; i < n; ++i) {
      AgentOptions o = Named(std::string(1, char('a' + i)) + "node");
      o.gossip_toml = kFastGossip;
      if (i > 0) o.seeds = {agents[0]->gossip_address()};
      if (customize) customize(i, o);
      agents.push_back(std::make_unique<Agent>(tmp.path(), &secrets, o));
    }
  }
  void StartAll() {
    for (auto& a : agents) a->Start();
    for (auto& a : agents) REQUIRE(a->WaitReady());
  }
  Agent& operator[](size_t i) { return *agents[i]; }

  std::vector<Agent*> All() {
    std::vector<Agent*> v;
    for (auto& a : agents) v.push_back(a.get());
    return v;
  }
  // Every agent of `which` (default: all) has the same tree on disk and
  // reports the same root.
  bool Converged(std::vector<Agent*> which = {}) {
    if (which.empty()) which = All();
    std::string first = TreeFingerprint(which[0]->data_dir());
    std::string root;
    for (Agent* a : which) {
      if (TreeFingerprint(a->data_dir()) != first) return false;
      nlohmann::json s = a->Status();
      if (!s.contains("root")) return false;
      if (root.empty()) root = s["root"];
      if (s["root"] != root) return false;
    }
    return true;
  }
  bool WaitConverged(seconds timeout = seconds(30)) {
    return WaitFor([&] { return Converged(); }, timeout);
  }
  // Every agent sees every other one alive.
  bool WaitMembers(seconds timeout = seconds(20)) {
    return WaitFor(
        [&] {
          for (auto& a : agents) {
            size_t alive = 0;
            for (const auto& m : a->Status().value("members", nlohmann::json::array())) {
              if (m.value("state", "") == "alive") ++alive;
            }
            if (alive + 1 != agents.size()) return false;
          }
          return true;
        },
        timeout);
  }
  std::string Diagnose() {
    std::string out;
    for (auto& a : agents) {
      nlohmann::json s = a->Status();
      out += "== " + a->name() + " " + (s.contains("sync_state") ? s["sync_state"].dump() : "") +
             "\n" + TreeFingerprint(a->data_dir()) + "\n";
      std::string log = a->log();
      out += log.size() > 8000 ? log.substr(log.size() - 8000) : log;
    }
    return out;
  }
};

// One HTTP/1.1 request to 127.0.0.1:`port`, the whole answer (head and body)
// as the server sent it before closing; empty if the connection failed.
inline std::string HttpRequest(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

inline std::string HttpGet(int port, const std::string& path) {
  return HttpRequest(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

}  // namespace gossync::testutil::ops
