// gossync: the operator's CLI. Talks to gossyncd over the admin socket and
// sets up keys and certificates.
//
// Exit codes (docs/cli.md):
//   0  success
//   1  the command failed (the agent answered an error, a file could not be written)
//   2  bad usage or a bad config file
//   3  the agent is not running or not reachable
//   4  timed out (status --wait-converged, sync)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "agent/cli/admin_client.h"
#include "agent/cli/format.h"
#include "agent/cli/keys.h"
#include "gossync/config.h"
#include "gossync/version.h"

namespace gossync::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitTimeout = 4;

constexpr const char* kDefaultConfig = "/etc/gossync/gossync.toml";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int ExitFor(const Status& s) {
  switch (s.code()) {
    case Code::kUnavailable: return kExitUnreachable;
    case Code::kAborted: return kExitTimeout;
    case Code::kInvalidArgument: return kExitUsage;
    default: return kExitFailed;
  }
}

int Fail(const Status& s) {
  std::fprintf(stderr, "gossync: %s\n", s.message().c_str());
  return ExitFor(s);
}

struct Globals {
  std::string config_path;
  std::string socket_path;
  bool json = false;
  double timeout_s = 30;
};

// The admin socket: --socket, else the config's admin_socket.
Result<std::string> SocketPath(const Globals& g) {
  if (!g.socket_path.empty()) return g.socket_path;
  std::string path = g.config_path.empty() ? kDefaultConfig : g.config_path;
  std::ifstream in(path);
  if (!in) {
    return Status::InvalidArgument("cannot read config " + path +
                                   " (give --config FILE or --socket PATH)");
  }
  std::stringstream text;
  text << in.rdbuf();
  ConfigLoad load = ParseConfig(text.str(), path);
  if (!load.ok()) return Status::InvalidArgument(load.errors.front());
  return load.config.admin_socket;
}

Result<nlohmann::json> Ask(const Globals& g, nlohmann::json request, double timeout_s) {
  Result<std::string> socket = SocketPath(g);
  if (!socket.ok()) return socket.status();
  return Call(*socket, request, static_cast<int>(timeout_s * 1000));
}

void Print(const Globals& g, const nlohmann::json& j, const std::string& human) {
  if (g.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << human;
  }
}

int Status_(const Globals& g, bool wait_converged) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000));
  for (;;) {
    Result<nlohmann::json> r = Ask(g, {{"cmd", "status"}}, std::min(g.timeout_s, 10.0));
    bool converged = r.ok() && r->value("converged", false);
    bool last_try = std::chrono::steady_clock::now() >= deadline;
    if (!wait_converged || converged || (last_try && r.ok())) {
      if (!r.ok()) return Fail(r.status());
      Print(g, *r, FormatStatus(*r, NowMs()));
      if (wait_converged && !converged) {
        std::fprintf(stderr, "gossync: not converged after %.0fs\n", g.timeout_s);
        return kExitTimeout;
      }
      return kExitOk;
    }
    if (last_try) return Fail(r.status());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // poll interval, not sync
  }
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"gossync: status and set-up of the gossync file-sync agent"};
  app.set_version_flag("--version", std::string(kVersion));
  app.require_subcommand(1);
  Globals g;
  auto* config_opt = app.add_option("-c,--config", g.config_path,
                                    std::string("config file (default ") + kDefaultConfig + ")");
  app.add_option("-s,--socket", g.socket_path, "admin socket of the agent")
      ->excludes(config_opt);

  bool wait_converged = false;
  auto* status = app.add_subcommand("status", "show this node's state");
  status->add_flag("--json", g.json, "print JSON");
  status->add_flag("--wait-converged", wait_converged,
                   "wait until every live member has our root (exit 4 on timeout)");
  status->add_option("--timeout", g.timeout_s, "seconds to wait (default 30)");

  auto* peers = app.add_subcommand("peers", "list the cluster's members");
  peers->add_flag("--json", g.json, "print JSON");

  std::string peer;
  auto* diff = app.add_subcommand("diff", "what would move between us and PEER, moving nothing");
  diff->add_option("peer", peer, "member name")->required();
  diff->add_flag("--json", g.json, "print JSON");
  diff->add_option("--timeout", g.timeout_s, "seconds to wait (default 30)");

  auto* sync = app.add_subcommand("sync", "repair with PEER now (every differing member if none)");
  sync->add_option("peer", peer, "member name");
  sync->add_flag("--json", g.json, "print JSON");
  sync->add_option("--timeout", g.timeout_s, "seconds to wait (default 30)");

  auto* conflicts = app.add_subcommand("conflicts", "list conflict copies");
  conflicts->add_flag("--json", g.json, "print JSON");

  std::string out_path;
  bool force = false;
  auto* keygen = app.add_subcommand("keygen", "write a gossip keyring with one new key");
  keygen->add_option("--out", out_path, "keyring file to write (mode 0600)")->required();
  keygen->add_flag("--force", force, "overwrite an existing file");
  keygen->add_flag("--json", g.json, "print JSON");

  auto* ca = app.add_subcommand("ca", "cluster certificate authority");
  ca->require_subcommand(1);
  std::string ca_dir;
  int days = 825;
  auto* ca_init = ca->add_subcommand("init", "write DIR/ca.crt and DIR/ca.key");
  ca_init->add_option("--dir", ca_dir, "directory for the CA")->required();
  ca_init->add_flag("--force", force, "overwrite an existing CA");
  ca_init->add_flag("--json", g.json, "print JSON");
  std::string node;
  auto* ca_issue = ca->add_subcommand("issue", "write DIR/NODE.crt and DIR/NODE.key");
  ca_issue->add_option("node", node, "node name (the certificate's name)")->required();
  ca_issue->add_option("--dir", ca_dir, "directory holding the CA")->required();
  ca_issue->add_option("--days", days, "validity in days (default 825)");
  ca_issue->add_flag("--json", g.json, "print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (*status) return Status_(g, wait_converged);
  if (*peers) {
    Result<nlohmann::json> r = Ask(g, {{"cmd", "peers"}}, g.timeout_s);
    if (!r.ok()) return Fail(r.status());
    const nlohmann::json& members = (*r)["members"];
    Print(g, members, FormatPeers(members, NowMs()));
    return kExitOk;
  }
  if (*diff) {
    Result<nlohmann::json> r = Ask(g, {{"cmd", "diff"}, {"peer", peer}}, g.timeout_s);
    if (!r.ok()) return Fail(r.status());
    Print(g, *r, FormatDiff(*r));
    return kExitOk;
  }
  if (*sync) {
    nlohmann::json req = {{"cmd", "sync"}, {"timeout_ms", int64_t(g.timeout_s * 1000)}};
    if (!peer.empty()) req["peer"] = peer;
    Result<nlohmann::json> r = Ask(g, req, g.timeout_s + 5);
    if (!r.ok()) return Fail(r.status());
    Print(g, *r, FormatSync(*r));
    for (const auto& x : (*r).value("results", nlohmann::json::array())) {
      if (!x.value("ok", false)) return kExitFailed;
    }
    return kExitOk;
  }
  if (*conflicts) {
    Result<nlohmann::json> r = Ask(g, {{"cmd", "conflicts"}}, g.timeout_s);
    if (!r.ok()) return Fail(r.status());
    const nlohmann::json& list = (*r)["conflicts"];
    Print(g, list, FormatConflicts(list));
    return kExitOk;
  }
  Result<nlohmann::json> done = Status::Internal("no command");
  if (*keygen) done = Keygen(out_path, force);
  if (*ca_init) done = CaInit(ca_dir, force);
  if (*ca_issue) done = CaIssue(ca_dir, node, days);
  if (!done.ok()) return Fail(done.status());
  Print(g, *done, done->value("message", std::string()) + "\n");
  return kExitOk;
}

}  // namespace gossync::cli

int main(int argc, char** argv) { return gossync::cli::Main(argc, argv); }
