// Integration-test harness: real gossyncd processes on 127.0.0.1, driven
// through the real gossync CLI. Waiting is always polling a condition with a
// deadline, never sleeping for synchronization.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gossync::testutil {

// A temporary directory, removed with everything in it on destruction
// (kept when GOSSYNC_KEEP_TMP is set, for debugging).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Runs a command (argv, no shell) and returns its exit status and stdout.
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
RunResult Run(const std::vector<std::string>& argv);

// Runs the gossync CLI.
RunResult Cli(const std::vector<std::string>& args);

// A free port on 127.0.0.1 for both UDP and TCP (bound then released).
int FreePort();

// Polls `cond` every 20 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

// File helpers for tests.
void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);
void MakeDirs(const std::string& path);

// Shared material of one test cluster: a keyring and a CA in a temp dir.
class ClusterSecrets {
 public:
  explicit ClusterSecrets(const std::string& dir);
  const std::string& keyring() const { return keyring_; }
  const std::string& dir() const { return dir_; }
  // Issues DIR/NAME.crt and DIR/NAME.key.
  void Issue(const std::string& name);

 private:
  std::string dir_;
  std::string keyring_;
};

struct AgentOptions {
  std::string name = "alpha";
  std::vector<std::string> seeds;            // gossip addresses
  std::string extra_toml;                    // appended at the top level
  std::string gossip_toml;                   // appended to [gossip]
  std::string repair_toml;                   // appended to [repair]
};

inline AgentOptions Named(std::string name) {
  AgentOptions o;
  o.name = std::move(name);
  return o;
}

// One gossyncd with its own data_dir, state_dir, admin socket and ports.
class Agent {
 public:
  Agent(const std::string& root, ClusterSecrets* secrets, AgentOptions options);
  ~Agent();  // SIGKILLs a running process

  void Start();
  // SIGTERM and wait; returns the exit status (0 for a clean shutdown).
  int Stop();
  void Kill();    // SIGKILL and reap
  void Pause();   // SIGSTOP
  void Resume();  // SIGCONT
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // `gossync --socket S status --json`; an empty object if it fails.
  nlohmann::json Status() const;
  // Waits until the agent answers status (started and first scan done).
  bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  RunResult Cli(const std::vector<std::string>& args) const;  // with --socket

  const std::string& name() const { return options_.name; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& socket() const { return socket_; }
  std::string gossip_address() const;
  std::string repair_address() const;
  std::string log() const;  // everything the agent wrote to stderr so far

 private:
  void WriteConfig();
  std::string root_;
  ClusterSecrets* secrets_;
  AgentOptions options_;
  std::string data_dir_, state_dir_, config_path_, socket_, log_path_;
  int gossip_port_, repair_port_;
  pid_t pid_ = -1;
};

// The path of the built binaries (set by CMake).
std::string GossyncdPath();
std::string GossyncPath();

// "rel/path -> (kind, mode, content or target)" for every entry under dir,
// for comparing trees file by file and mode by mode.
std::string TreeFingerprint(const std::string& dir);

}  // namespace gossync::testutil
