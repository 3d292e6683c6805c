// README.md's quickstart, run as written on 127.0.0.1 (issue 5): the test
// reads the shell and TOML blocks of the "Quickstart" section and runs them,
// with the servers' paths and addresses mapped to temp dirs and free ports:
//   /etc/gossync -> NODE/etc, /srv/gossync -> NODE/data, 10.0.0.K:PORT and
//   0.0.0.0:PORT -> 127.0.0.1:free port of node K, `-o gossync -g gossync`
//   dropped (no such user here), `gossync CMD` -> `gossync --config NODE/etc/gossync.toml
//   CMD`, `systemctl enable --now gossync` -> gossyncd started in the
//   foreground, state_dir and admin_socket (the package's defaults) in NODE/.
// A line's trailing comment says where it runs ("# on alpha", "# on each");
// "a moment later" means: retried until it succeeds.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/integration/ops_cluster.h"

extern char** environ;

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

struct Block {
  std::string lang;  // sh or toml
  std::vector<std::string> lines;
};

// The fenced blocks between "## Quickstart" and the next "## " heading.
std::vector<Block> QuickstartBlocks() {
  fs::path readme = fs::path(__FILE__).parent_path() / "../../README.md";
  std::ifstream in(readme);
  REQUIRE(in);
  std::vector<Block> blocks;
  std::string line;
  bool in_section = false, in_block = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      if (in_section) break;
      in_section = line.rfind("## Quickstart", 0) == 0;
      continue;
    }
    if (!in_section) continue;
    std::string t = line.substr(std::min(line.find_first_not_of(' '), line.size()));
    if (t.rfind("```", 0) == 0) {
      if (in_block) {
        in_block = false;
      } else {
        in_block = true;
        blocks.push_back({t.substr(3), {}});
      }
      continue;
    }
    if (in_block) blocks.back().lines.push_back(t);
  }
  REQUIRE(blocks.size() >= 5);
  return blocks;
}

// "cmd   # on alpha" -> {"cmd", "on alpha"}.
std::pair<std::string, std::string> SplitComment(const std::string& line) {
  size_t hash = line.find(" #");
  if (hash == std::string::npos) return {line, ""};
  std::string cmd = line.substr(0, hash);
  cmd.erase(cmd.find_last_not_of(' ') + 1);
  std::string comment = line.substr(hash + 2);
  comment.erase(0, comment.find_first_not_of(' '));
  return {cmd, comment};
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

struct Node {
  std::string name;
  int index = 0;
  std::string dir, etc, data, config;
  int gossip_port = 0, repair_port = 0;
  pid_t pid = -1;

  ~Node() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  std::string Gossip() const { return "127.0.0.1:" + std::to_string(gossip_port); }
  std::string Repair() const { return "127.0.0.1:" + std::to_string(repair_port); }
  std::string Log() const { return ReadFile(dir + "/agent.log"); }
};

class Quickstart {
 public:
  Quickstart() {
    admin_ = tmp_ / "admin";
    MakeDirs(admin_);
    const char* names[] = {"alpha", "beta", "gamma"};
    for (int i = 0; i < 3; ++i) {
      auto n = std::make_unique<Node>();
      n->name = names[i];
      n->index = i;
      n->dir = tmp_ / n->name;
      n->etc = n->dir + "/etc";  // what the package creates: /etc/gossync, /srv/gossync
      n->data = n->dir + "/data";
      n->config = n->etc + "/gossync.toml";
      n->gossip_port = FreePort();
      n->repair_port = FreePort();
      MakeDirs(n->etc);
      MakeDirs(n->data);
      MakeDirs(n->dir + "/state");
      nodes_.push_back(std::move(n));
    }
    path_ = fs::path(GossyncPath()).parent_path().string() + ":" +
            fs::path(GossyncdPath()).parent_path().string();
  }

  std::vector<std::unique_ptr<Node>>& nodes() { return nodes_; }
  Node& node(const std::string& name) {
    for (auto& n : nodes_) {
      if (n->name == name) return *n;
    }
    FAIL("no node " << name);
    throw;
  }

  // A README line for `node` (nullptr: the admin machine), mapped to the test's paths.
  std::string Map(std::string cmd, const Node* node) const {
    if (node) {
      cmd = ReplaceAll(cmd, "ca/alpha.", "ca/" + node->name + ".");
      cmd = ReplaceAll(cmd, "/etc/gossync", node->etc);
      cmd = ReplaceAll(cmd, "/srv/gossync", node->data);
      if (cmd.rfind("gossync ", 0) == 0) cmd = "gossync --config " + node->config + cmd.substr(7);
    }
    cmd = ReplaceAll(cmd, "-o gossync ", "");
    cmd = ReplaceAll(cmd, "-g gossync ", "");
    return cmd;
  }

  RunResult Sh(const std::string& cmd) const {
    return Run(
        {"/bin/sh", "-c", "cd '" + admin_ + "' && PATH='" + path_ + "':\"$PATH\" && " + cmd});
  }

  // The README's config for alpha, as `node` gets it.
  std::string Config(const std::vector<std::string>& lines, const Node& node) const {
    std::string ip = "10.0.0." + std::to_string(node.index + 1);
    std::ostringstream out;
    out << "state_dir = \"" << node.dir << "/state\"\n"
        << "admin_socket = \"" << node.dir << "/admin.sock\"\n";
    for (std::string line : lines) {
      if (line.rfind("node = ", 0) == 0) line = "node = \"" + node.name + "\"";
      if (line.rfind("advertise = ", 0) == 0)
        line = std::regex_replace(line, std::regex(R"(10\.0\.0\.1:)"), ip + ":");
      if (line.rfind("seeds = ", 0) == 0) {
        line = "seeds = [";
        for (const auto& other : nodes_) {
          if (other.get() == &node) continue;
          if (line.back() != '[') line += ", ";
          line += "\"10.0.0." + std::to_string(other->index + 1) + ":7946\"";
        }
        line += "]";
      }
      line = ReplaceAll(line, "/etc/gossync", node.etc);
      line = ReplaceAll(line, "/srv/gossync", node.data);
      line = ReplaceAll(line, "0.0.0.0:7946", node.Gossip());
      line = ReplaceAll(line, "0.0.0.0:7947", node.Repair());
      for (const auto& n : nodes_) {
        std::string from = "10.0.0." + std::to_string(n->index + 1);
        line = ReplaceAll(line, from + ":7946", n->Gossip());
        line = ReplaceAll(line, from + ":7947", n->Repair());
      }
      out << line << "\n";
    }
    return out.str();
  }

  void StartAgent(Node& n) {
    int log_fd =
        open((n.dir + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::string bin = GossyncdPath();
    std::string flag = "--config";
    char* argv[] = {bin.data(), flag.data(), n.config.data(), nullptr};
    int rc = posix_spawn(&n.pid, argv[0], &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(log_fd);
    REQUIRE(rc == 0);
  }

  std::string Diagnose() const {
    std::string out;
    for (const auto& n : nodes_) {
      std::string log = n->Log();
      out += "== " + n->name + "\n" + (log.size() > 4000 ? log.substr(log.size() - 4000) : log);
    }
    return out;
  }

 private:
  TempDir tmp_;
  std::string admin_;
  std::string path_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_CASE("Quickstart: the README's three-server steps converge on 127.0.0.1",
          "[integration][quickstart]") {
  std::vector<Block> blocks = QuickstartBlocks();
  Quickstart q;
  bool started = false;
  std::map<std::string, std::string> last_output;  // node -> output of its last line
  for (const Block& b : blocks) {
    std::string all;
    for (const auto& l : b.lines) all += l + "\n";
    INFO("README block:\n" << all);
    if (b.lang == "toml") {
      for (auto& n : q.nodes()) WriteFile(n->config, q.Config(b.lines, *n));
      continue;
    }
    REQUIRE(b.lang == "sh");
    if (all.find("make package") != std::string::npos) continue;  // we use the build tree
    bool admin = all.find("gossync keygen") != std::string::npos;
    for (const std::string& raw : b.lines) {
      auto [cmd, comment] = SplitComment(raw);
      if (cmd.empty()) continue;
      if (admin) {
        RunResult r = q.Sh(q.Map(cmd, nullptr));
        INFO(cmd << "\n" << r.out << r.err);
        REQUIRE(r.exit_code == 0);
        continue;
      }
      for (auto& n : q.nodes()) {
        if (comment.rfind("on ", 0) == 0 && comment.rfind("on each", 0) != 0 &&
            comment.rfind("on " + n->name, 0) != 0) {
          continue;
        }
        if (cmd == "systemctl enable --now gossync") {
          q.StartAgent(*n);
          started = true;
          continue;
        }
        std::string mapped = q.Map(cmd, n.get());
        RunResult r;
        if (comment.find("a moment later") != std::string::npos) {
          bool ok = WaitFor(
              [&] {
                r = q.Sh(mapped);
                return r.exit_code == 0 && !r.out.empty();
              },
              seconds(30));
          if (!ok) FAIL(mapped << "\n" << r.out << r.err << q.Diagnose());
        } else {
          r = q.Sh(mapped);
          if (r.exit_code != 0)
            FAIL(n->name << ": " << mapped << " exited " << r.exit_code << "\n"
                         << r.out << r.err << q.Diagnose());
        }
        last_output[n->name] = r.out;
      }
    }
  }
  REQUIRE(started);
  // The last commands were `gossync status --wait-converged` on each (exit 0, checked
  // above); the file written on alpha is on gamma.
  CHECK(ReadFile(q.node("gamma").data + "/hello.txt") == "hello\n");
  CHECK(ReadFile(q.node("beta").data + "/hello.txt") == "hello\n");
  for (auto& n : q.nodes()) {
    RunResult r = q.Sh(q.Map("gossync status --json", n.get()));
    REQUIRE(r.exit_code == 0);
    nlohmann::json s = nlohmann::json::parse(r.out);
    CHECK(s["converged"] == true);
    CHECK(s["members"].size() == 2);
    CHECK(last_output.count(n->name) == 1);
  }
}

}  // namespace
}  // namespace gossync::testutil
