#include "tests/testutil/hostile_env.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gossync::testutil {
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::string Describe(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return "absent";
  std::ostringstream o;
  o << std::oct << (st.st_mode & 0177777) << std::dec << " size=" << st.st_size
    << " ino=" << st.st_ino << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    o << " -> " << fs::read_symlink(path, ec).string();
  } else if (S_ISREG(st.st_mode) && st.st_size <= (1 << 20)) {
    o << " content#" << std::hash<std::string>{}(ReadFile(path));
  }
  return o.str();
}

const char* kFastGossip =
    "interval_ms = 200\nprobe_interval_ms = 250\nprobe_timeout_ms = 100\nsuspicion_mult = 4\n";

}  // namespace

FsSnapshot FsSnapshot::Take(const std::vector<std::string>& roots,
                            const std::vector<std::string>& exclude,
                            const std::vector<std::string>& singles) {
  FsSnapshot s;
  auto excluded = [&](const std::string& p) {
    for (const std::string& x : exclude) {
      if (p == x) return true;
    }
    return false;
  };
  for (const std::string& root : roots) {
    s.items_[root] = Describe(root);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::string p = it->path().string();
      if (excluded(p)) {
        it.disable_recursion_pending();
        continue;
      }
      s.items_[p] = Describe(p);
    }
  }
  for (const std::string& p : singles) s.items_[p] = Describe(p);
  return s;
}

std::string FsSnapshot::DiffTo(const FsSnapshot& after) const {
  std::string out;
  for (const auto& [p, d] : items_) {
    auto it = after.items_.find(p);
    std::string now = it == after.items_.end() ? "absent" : it->second;
    if (now != d) out += p + ": " + d + " => " + now + "\n";
  }
  for (const auto& [p, d] : after.items_) {
    if (!items_.count(p)) out += p + ": new " + d + "\n";
  }
  return out;
}

void CheckMemory(const std::string& what, uint64_t before_kib, uint64_t peak_kib) {
  WARN(what << ": VmRSS " << before_kib << " KiB before, " << peak_kib << " KiB at the peak (+"
            << (peak_kib - std::min(peak_kib, before_kib)) / 1024 << " MiB)"
            << (kSanitized ? ", not checked under ASan" : ""));
  if (!kSanitized) CHECK(peak_kib < before_kib + 64 * 1024);
}

uint64_t ProcRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

uint64_t ProcCpuMs(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  // Fields after the command: state(3) ... utime(14) stime(15).
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return (utime + stime) * 1000 / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
}

bool ProcAlive(pid_t pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

HostileCluster::HostileCluster(const std::string& repair_toml) {
  AgentOptions a = Named("anode");
  a.gossip_toml = kFastGossip;
  a.repair_toml = repair_toml;
  target = std::make_unique<Agent>(tmp.path(), &secrets, a);
  AgentOptions b = Named("bnode");
  b.gossip_toml = kFastGossip;
  b.repair_toml = repair_toml;
  b.seeds = {target->gossip_address()};
  good = std::make_unique<Agent>(tmp.path(), &secrets, b);
  secrets.Issue("mallory");
  mallory.cert = secrets.dir() + "/mallory.crt";
  mallory.key = secrets.dir() + "/mallory.key";
  mallory.ca = secrets.dir() + "/ca.crt";
  outside = tmp / "outside";
  MakeDirs(outside + "/sub");
  WriteFile(outside + "/marker", "outside marker\n");
  WriteFile(outside + "/sub/marker", "outside sub marker\n");
  WriteFile(tmp / "anode/marker", "data_dir's parent\n");
  WriteFile(tmp / "marker", "test root\n");
}

void HostileCluster::Start() {
  target->Start();
  good->Start();
  REQUIRE(target->WaitReady());
  REQUIRE(good->WaitReady());
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json s = target->Status();
        for (const auto& m : s.value("members", nlohmann::json::array())) {
          if (m.value("name", "") == "bnode" && m.value("state", "") == "alive") return true;
        }
        return false;
      },
      seconds(10)));
  Rebase();
}

void HostileCluster::Rebase() {
  outside_before_ = Outside();
  SetTree();
}

FsSnapshot HostileCluster::Outside() const {
  std::vector<std::string> exclude;
  for (const Agent* a : {target.get(), good.get()}) {
    std::string root = fs::path(a->data_dir()).parent_path().string();
    exclude.push_back(a->data_dir());
    exclude.push_back(a->state_dir());
    exclude.push_back(a->socket());
    exclude.push_back(root + "/agent.log");
  }
  return FsSnapshot::Take({tmp.path()}, exclude, {"/x", "/etc/x", "/tmp/x", "/data/x"});
}

std::unique_ptr<TestPeer> HostileCluster::Connect() {
  Result<std::unique_ptr<TestPeer>> p = TestPeer::Tls(target->repair_address(), mallory, "anode");
  INFO((p.ok() ? "" : p.status().ToString()));
  REQUIRE(p.ok());
  Result<core::RepairMessage> hello = (*p)->Receive(milliseconds(5000));
  INFO((hello.ok() ? "" : hello.status().ToString()));
  REQUIRE(hello.ok());
  REQUIRE(std::holds_alternative<core::HelloMsg>(*hello));
  REQUIRE((*p)->Send(PeerHello("mallory")).ok());
  return std::move(*p);
}

uint64_t HostileCluster::Aborts(const std::string& name) const {
  nlohmann::json s = target->Status();
  if (!s.contains("counters")) return 0;
  return s["counters"]["repair"]["aborts"].value(name, uint64_t{0});
}

bool HostileCluster::WaitAborts(const std::string& name, uint64_t at_least) const {
  return WaitFor([&] { return Aborts(name) >= at_least; }, seconds(10));
}

std::string HostileCluster::LogTail(size_t n) const {
  std::string log = target->log();
  return log.size() > n ? log.substr(log.size() - n) : log;
}

void HostileCluster::ExpectIntact(const std::string& expected_tree) {
  INFO("target log tail:\n" << LogTail());
  REQUIRE(ProcAlive(target->pid()));
  REQUIRE(target->Status().contains("root"));
  CHECK(outside_before_.DiffTo(Outside()) == "");
  std::string now = TreeFingerprint(target->data_dir());
  if (!expected_tree.empty()) CHECK(now == expected_tree);
  for (auto& e : fs::recursive_directory_iterator(target->data_dir())) {
    CHECK(e.path().filename().string().find("gossync") == std::string::npos);
  }
  // A well-behaved peer still syncs with the target.
  std::string name = "sync-" + std::to_string(++syncs_) + ".txt";
  std::string content = "synced after hostile act " + std::to_string(syncs_) + "\n";
  WriteFile(good->data_dir() + "/" + name, content);
  bool synced =
      WaitFor([&] { return ReadFile(target->data_dir() + "/" + name) == content; }, seconds(20));
  INFO("good log tail:\n" << [&] {
    std::string l = good->log();
    return l.size() > 3000 ? l.substr(l.size() - 3000) : l;
  }());
  REQUIRE(synced);
  SetTree();
}

}  // namespace gossync::testutil
