// Real agents gossiping on 127.0.0.1 (issue 3's integration tests).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>

#include "tests/testutil/cluster.h"

namespace gossync::testutil {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Fast failure detection so the tests stay short: suspect after a missed
// probe (250 ms period), dead after suspicion_mult * 250 ms.
const char* kFastGossip =
    "interval_ms = 200\nprobe_interval_ms = 250\nprobe_timeout_ms = 100\nsuspicion_mult = 4\n";

std::string StateOf(const Agent& viewer, const std::string& name) {
  RunResult r = viewer.Cli({"peers", "--json"});
  if (r.exit_code != 0) return "";
  nlohmann::json members = nlohmann::json::parse(r.out, nullptr, false);
  if (!members.is_array()) return "";
  for (const auto& m : members) {
    if (m.value("name", "") == name) return m.value("state", "");
  }
  return "";
}

bool AllSee(const std::vector<Agent*>& agents, const std::string& state) {
  for (Agent* viewer : agents) {
    for (Agent* other : agents) {
      if (viewer != other && StateOf(*viewer, other->name()) != state) return false;
    }
  }
  return true;
}

struct Cluster {
  TempDir tmp;
  ClusterSecrets secrets{tmp / "secrets"};
  std::vector<std::unique_ptr<Agent>> agents;

  // n agents; every one but the first knows only the first as its seed.
  explicit Cluster(int n) {
    for (int i = 0; i < n; ++i) {
      AgentOptions o = Named(std::string(1, char('a' + i)) + "node");
      o.gossip_toml = kFastGossip;
      if (i > 0) o.seeds = {agents[0]->gossip_address()};
      agents.push_back(std::make_unique<Agent>(tmp.path(), &secrets, o));
    }
  }
  std::vector<Agent*> all() {
    std::vector<Agent*> v;
    for (auto& a : agents) v.push_back(a.get());
    return v;
  }
  void StartAll() {
    for (auto& a : agents) a->Start();
    for (auto& a : agents) REQUIRE(a->WaitReady());
  }
};

TEST_CASE("Gossip: three agents that know one seed all list each other alive within 5 s",
          "[integration][gossip]") {
  Cluster c(3);
  c.StartAll();
  CHECK(WaitFor([&] { return AllSee(c.all(), "alive"); }, seconds(5)));
  nlohmann::json s = c.agents[1]->Status();
  CHECK(s["members"].size() == 2);
  CHECK(s["counters"]["gossip"]["packets_in"].get<int>() > 0);
}

TEST_CASE("Gossip: a stopped agent is marked dead, and alive again after SIGCONT",
          "[integration][gossip]") {
  Cluster c(3);
  c.StartAll();
  REQUIRE(WaitFor([&] { return AllSee(c.all(), "alive"); }, seconds(5)));
  Agent& victim = *c.agents[2];
  victim.Pause();
  // Dead within: a probe period to miss, suspicion (4 x 250 ms x log10 scaling,
  // at most 6x that with no confirmations), and gossip of the news.
  auto dead_everywhere = [&] {
    return StateOf(*c.agents[0], victim.name()) == "dead" &&
           StateOf(*c.agents[1], victim.name()) == "dead";
  };
  CHECK(WaitFor(dead_everywhere, seconds(10)));
  victim.Resume();
  CHECK(WaitFor([&] { return AllSee(c.all(), "alive"); }, seconds(10)));
}

TEST_CASE("Gossip: an agent with another keyring never appears in any member list",
          "[integration][gossip]") {
  Cluster c(2);
  // The intruder has a valid certificate but a keyring of its own.
  TempDir other;
  ClusterSecrets intruder_secrets(other / "secrets");
  AgentOptions o = Named("intruder");
  o.gossip_toml = kFastGossip;
  o.seeds = {c.agents[0]->gossip_address()};
  Agent intruder(other.path(), &intruder_secrets, o);
  c.StartAll();
  intruder.Start();
  REQUIRE(intruder.WaitReady());
  REQUIRE(WaitFor([&] { return AllSee(c.all(), "alive"); }, seconds(5)));
  // Give the intruder time to try: its join pings arrive and are refused.
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json s = c.agents[0]->Status();
        return s["counters"]["gossip"]["drops"].value("open_unknown_key_id", 0) > 0;
      },
      seconds(5)));
  for (auto& a : c.agents) CHECK(StateOf(*a, "intruder").empty());
  CHECK(intruder.Status()["members"].empty());
}

TEST_CASE("Gossip: random bytes sent to the gossip port change nothing and are counted",
          "[integration][gossip]") {
  Cluster c(2);
  c.StartAll();
  REQUIRE(WaitFor([&] { return AllSee(c.all(), "alive"); }, seconds(5)));
  nlohmann::json before = c.agents[0]->Status();
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string addr = c.agents[0]->gossip_address();
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1))));
  auto dropped = [&] {
    nlohmann::json g = c.agents[0]->Status()["counters"]["gossip"];
    int n = g["udp"].value("oversize", 0);
    for (auto& [k, v] : g["drops"].items()) n += v.get<int>();
    return n;
  };
  // Paced in batches, so the kernel's socket buffer (which we cannot count)
  // does not overflow: every datagram must reach the agent and be counted.
  std::mt19937 rng(42);
  const int kBatches = 10, kBatch = 100;
  int base = dropped();
  for (int b = 0; b < kBatches; ++b) {
    for (int i = 0; i < kBatch; ++i) {
      std::vector<uint8_t> junk(1 + rng() % 1400);
      for (auto& byte : junk) byte = static_cast<uint8_t>(rng());
      if (i % 2 == 0 && junk.size() > 5) junk[0] = 1;  // looks like our version byte
      sendto(fd, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    }
    int want = base + (b + 1) * kBatch;
    REQUIRE(WaitFor([&] { return dropped() >= want; }, seconds(5)));
  }
  close(fd);
  CHECK(AllSee(c.all(), "alive"));
  nlohmann::json after = c.agents[0]->Status();
  CHECK(after["members"].size() == before["members"].size());
  CHECK(after["root"] == before["root"]);
}

TEST_CASE("Gossip: a keyring rotation on a live cluster never splits it",
          "[integration][gossip]") {
  Cluster c(3);
  c.StartAll();
  REQUIRE(WaitFor([&] { return AllSee(c.all(), "alive"); }, seconds(5)));
  std::string ring = c.secrets.keyring();
  std::string old_key = ReadFile(ring);
  RunResult k = Cli({"keygen", "--out", c.tmp / "new.keys"});
  REQUIRE(k.exit_code == 0);
  std::string new_key = ReadFile(c.tmp / "new.keys");
  auto reload_all = [&] {
    for (auto& a : c.agents) kill(a->pid(), SIGHUP);
  };
  auto healthy = [&] { return AllSee(c.all(), "alive"); };
  // 1. Add the new key everywhere (old stays primary). 2. Make it primary.
  // 3. Drop the old one. After every step the cluster stays whole.
  for (const std::string& contents :
       {old_key + new_key, new_key + old_key, new_key}) {
    WriteFile(ring, contents);
    reload_all();
    // Every agent keeps seeing every other alive for a few protocol periods.
    auto until = std::chrono::steady_clock::now() + milliseconds(1500);
    while (std::chrono::steady_clock::now() < until) {
      REQUIRE(healthy());
    }
  }
  for (auto& a : c.agents) CHECK(a->log().find("reloaded keys=1") != std::string::npos);
}

}  // namespace
}  // namespace gossync::testutil
