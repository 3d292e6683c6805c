#include "tests/testutil/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace gossync::testutil {
namespace fs = std::filesystem;

TempDir::TempDir() {
  char tmpl[] = "/tmp/gossync-test-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("GOSSYNC_KEEP_TMP")) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

std::string Slurp(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> v;
  for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

}  // namespace

RunResult Run(const std::vector<std::string>& argv) {
  // stdout and stderr go to temp files so a large output cannot deadlock us.
  char out_path[] = "/tmp/gossync-run-out-XXXXXX";
  char err_path[] = "/tmp/gossync-run-err-XXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid;
  auto args = Argv(argv);
  RunResult r;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&fa);
  lseek(out_fd, 0, SEEK_SET);
  lseek(err_fd, 0, SEEK_SET);
  r.out = Slurp(out_fd);
  r.err = Slurp(err_fd);
  close(out_fd);
  close(err_fd);
  unlink(out_path);
  unlink(err_path);
  return r;
}

RunResult Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GossyncPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

int FreePort() {
  // A port free for TCP and UDP at once; the kernel picks it for TCP.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int t = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(t, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    getsockname(t, reinterpret_cast<sockaddr*>(&a), &len);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    bool ok = bind(u, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(u);
    close(t);
    if (ok) return ntohs(a.sin_port);
  }
  throw std::runtime_error("no free port");
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void MakeDirs(const std::string& path) { fs::create_directories(path); }

ClusterSecrets::ClusterSecrets(const std::string& dir) : dir_(dir) {
  MakeDirs(dir);
  keyring_ = dir + "/gossip.keys";
  RunResult k = Cli({"keygen", "--out", keyring_});
  RunResult c = Cli({"ca", "init", "--dir", dir});
  if (k.exit_code != 0 || c.exit_code != 0) {
    throw std::runtime_error("secrets: " + k.err + c.err);
  }
}

void ClusterSecrets::Issue(const std::string& name) {
  RunResult r = Cli({"ca", "issue", name, "--dir", dir_});
  if (r.exit_code != 0) throw std::runtime_error("ca issue: " + r.err);
}

Agent::Agent(const std::string& root, ClusterSecrets* secrets, AgentOptions options)
    : root_(root + "/" + options.name), secrets_(secrets), options_(std::move(options)) {
  data_dir_ = root_ + "/data";
  state_dir_ = root_ + "/state";
  config_path_ = root_ + "/gossync.toml";
  socket_ = root_ + "/admin.sock";
  log_path_ = root_ + "/agent.log";
  MakeDirs(data_dir_);
  MakeDirs(state_dir_);
  gossip_port_ = FreePort();
  repair_port_ = FreePort();
  if (!fs::exists(secrets_->dir() + "/" + options_.name + ".crt")) secrets_->Issue(options_.name);
  WriteConfig();
}

Agent::~Agent() {
  if (pid_ > 0) Kill();
}

std::string Agent::gossip_address() const { return "127.0.0.1:" + std::to_string(gossip_port_); }
std::string Agent::repair_address() const { return "127.0.0.1:" + std::to_string(repair_port_); }

void Agent::WriteConfig() {
  std::ostringstream c;
  c << "node = \"" << options_.name << "\"\n"
    << "data_dir = \"" << data_dir_ << "\"\n"
    << "state_dir = \"" << state_dir_ << "\"\n"
    << "admin_socket = \"" << socket_ << "\"\n"
    << "log_level = \"debug\"\n"
    << "seeds = [";
  for (size_t i = 0; i < options_.seeds.size(); ++i) {
    c << (i ? ", " : "") << "\"" << options_.seeds[i] << "\"";
  }
  c << "]\n" << options_.extra_toml << "\n"
    << "[gossip]\nlisten = \"" << gossip_address() << "\"\n"
    << "keyring = \"" << secrets_->keyring() << "\"\n"
    << options_.gossip_toml << "\n"
    << "[repair]\nlisten = \"" << repair_address() << "\"\n"
    << "cert = \"" << secrets_->dir() << "/" << options_.name << ".crt\"\n"
    << "key = \"" << secrets_->dir() << "/" << options_.name << ".key\"\n"
    << "ca = \"" << secrets_->dir() << "/ca.crt\"\n"
    << options_.repair_toml << "\n";
  WriteFile(config_path_, c.str());
}

void Agent::Start() {
  if (pid_ > 0) throw std::runtime_error("agent already running");
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> argv = {GossyncdPath(), "--config", config_path_};
  auto args = Argv(argv);
  int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(log_fd);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start gossyncd: " + std::string(strerror(rc)));
  }
}

int Agent::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Agent::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void Agent::Pause() { kill(pid_, SIGSTOP); }
void Agent::Resume() { kill(pid_, SIGCONT); }

RunResult Agent::Cli(const std::vector<std::string>& args) const {
  std::vector<std::string> a = {"--socket", socket_};
  a.insert(a.end(), args.begin(), args.end());
  return testutil::Cli(a);
}

nlohmann::json Agent::Status() const {
  RunResult r = Cli({"status", "--json", "--timeout", "5"});
  if (r.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(r.out, nullptr, false);
}

bool Agent::WaitReady(std::chrono::milliseconds timeout) const {
  return WaitFor(
      [&] {
        nlohmann::json s = Status();
        return s.is_object() && s.contains("root") && s.value("scan", nlohmann::json::object())
                                                              .value("state", "") == "idle";
      },
      timeout);
}

std::string Agent::log() const { return ReadFile(log_path_); }

std::string GossyncdPath() { return GOSSYNC_TEST_GOSSYNCD; }
std::string GossyncPath() { return GOSSYNC_TEST_GOSSYNC; }

std::string TreeFingerprint(const std::string& dir) {
  std::map<std::string, std::string> items;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none);
       it != fs::recursive_directory_iterator(); ++it) {
    std::string rel = it->path().lexically_relative(dir).string();  // never resolves symlinks
    struct stat st;
    if (lstat(it->path().c_str(), &st) != 0) continue;
    char mode[16];
    std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    std::string v;
    if (S_ISLNK(st.st_mode)) {
      v = "link " + fs::read_symlink(it->path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      v = std::string("dir ") + mode;
    } else if (S_ISREG(st.st_mode)) {
      v = std::string("file ") + mode + " " + std::to_string(st.st_size) + " " +
          std::to_string(std::hash<std::string>{}(ReadFile(it->path())));
    } else {
      v = "other";
    }
    items[rel] = v;
  }
  std::string out;
  for (const auto& [k, v] : items) out += k + " -> " + v + "\n";
  return out;
}

}  // namespace gossync::testutil
