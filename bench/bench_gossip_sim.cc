// bench_gossip_sim: core::Membership at scale on the simulator
// (tests/testutil/sim_cluster.h). For each cluster size N it reports:
//   - bytes and packets per node per second in a quiet cluster (and at 5% loss),
//     counted as sealed UDP payloads (encoded size + 33 bytes of sealing);
//   - rounds until every node knows of a join: a new node starts with three
//     seeds; time until all N others list it alive, in gossip intervals
//     (target: log2(N) + 3 rounds at fanout 2);
//   - time to detect a failed node: first suspicion, first and last "dead";
//   - false deaths at 5% packet loss over 10 simulated minutes (target: 0).
// The cluster starts warm (every node knows every other, as after a long
// run) and settles for 30 s first. Deterministic for a given --seed.
//
// Usage: bench_gossip_sim [--nodes 1000,10000] [--seed 1] [--minutes 10] [--loss 0.05]
//                         [--broadcast-ms 200] [--sync-ms 30000]  (config overrides)
// Memory: ~100 bytes per (node, member) pair: 10,000 nodes need ~8 GB.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/core/membership.h"
#include "tests/testutil/sim_cluster.h"

namespace {

using gossync::core::MemberEvent;
using gossync::core::MemberState;
using gossync::testing::SimCluster;
using gossync::testing::SimOptions;

struct Args {
  std::vector<size_t> nodes{1000, 10000};
  uint64_t seed = 1;
  double minutes = 10;
  double loss = 0.05;
  int64_t broadcast_ms = -1;  // core::MembershipConfig::broadcast_interval_ms; -1 = default
  int64_t sync_ms = -1;       // core::MembershipConfig::sync_interval_ms; -1 = default
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

long PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

void Run(size_t n, const Args& args) {
  const auto wall = std::chrono::steady_clock::now();
  SimOptions o;
  o.nodes = n + 1;  // the last one joins later
  o.late_nodes = 1;
  o.seed = args.seed;
  o.seed_count = 3;
  o.warm_start = true;
  o.base.max_members = std::max<size_t>(o.base.max_members, 2 * n);
  if (args.broadcast_ms >= 0)
    o.base.broadcast_interval_ms = static_cast<uint32_t>(args.broadcast_ms);
  if (args.sync_ms >= 0) o.base.sync_interval_ms = static_cast<uint32_t>(args.sync_ms);
  SimCluster c(o);
  const gossync::core::MembershipConfig& cfg = c.node(0).config();
  std::printf(
      "\n== %zu nodes (probe %u ms, gossip %u ms, fanout %u, suspicion_mult %u, "
      "retransmit_mult %u) ==\n",
      n, cfg.probe_interval_ms, cfg.gossip_interval_ms, cfg.gossip_fanout, cfg.suspicion_mult,
      cfg.retransmit_mult);
  std::printf("  set-up: %.1f s wall, peak RSS %ld MB\n", Seconds(wall), PeakRssMb());
  std::fflush(stdout);

  c.RunFor(30000);

  // ---- Quiet cluster: what membership costs ----
  uint64_t b0 = c.bytes_sent(), p0 = c.net().counters().sent;
  const SimCluster::PerType tb0 = c.bytes_by_type(), tp0 = c.packets_by_type();
  const double quiet_s = 300;  // covers the scaled member-list sync period up to 10,000 nodes
  c.RunFor(static_cast<uint64_t>(quiet_s * 1000));
  const double bytes_quiet = double(c.bytes_sent() - b0) / n / quiet_s;
  const double pkts_quiet = double(c.net().counters().sent - p0) / n / quiet_s;
  std::printf("  quiet: %.0f bytes/node/s, %.2f packets/node/s (%.0f bytes/packet); by type:",
              bytes_quiet, pkts_quiet, bytes_quiet / pkts_quiet);
  for (int t = 1; t <= 6; ++t) {
    std::printf(" %s %.0f B/%.2f pkt",
                gossync::core::MessageTypeName(gossync::core::MessageType(t)),
                double(c.bytes_by_type()[t] - tb0[t]) / n / quiet_s,
                double(c.packets_by_type()[t] - tp0[t]) / n / quiet_s);
  }
  std::printf("\n");
  std::fflush(stdout);

  // ---- A join ----
  const size_t joiner = n;
  const std::string joiner_name = SimCluster::Name(joiner);
  std::vector<uint64_t> learned(n, 0);
  size_t learned_count = 0;
  uint64_t t_join = 0;
  c.on_event([&](uint64_t now, size_t node, const MemberEvent& e) {
    if (node < n && e.name == joiner_name && e.to == MemberState::kAlive && learned[node] == 0) {
      learned[node] = now;
      ++learned_count;
    }
  });
  t_join = c.now();
  c.Start(joiner);
  bool all_know = c.RunUntil([&] { return learned_count == n; }, t_join + 300000, 100);
  std::vector<uint64_t> lat;
  for (uint64_t t : learned) {
    if (t != 0) lat.push_back(t - t_join);
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat.empty() ? 0.0 : double(lat[std::min(lat.size() - 1, size_t(p * lat.size()))]);
  };
  const double round_ms = cfg.gossip_interval_ms;
  const double target = std::log2(double(n)) + 3;
  std::printf(
      "  join: %s%zu/%zu nodes list it; rounds (of %.0f ms) until: half %.1f, 90%% %.1f, "
      "all %.1f (target log2(N)+3 = %.1f)\n",
      all_know ? "" : "ONLY ", learned_count, n, round_ms, pct(0.5) / round_ms, pct(0.9) / round_ms,
      lat.empty() ? 0.0 : lat.back() / round_ms, target);
  bool joiner_knows = c.RunUntil([&] { return c.node(joiner).Count(MemberState::kAlive) >= n; },
                                 c.now() + 120000, 100);
  std::printf("  join: the joiner lists all %zu after %.1f s (%llu sync pages)\n", n,
              (c.now() - t_join) / 1000.0,
              static_cast<unsigned long long>(c.node(joiner).stats().sync_pages_received));
  if (!joiner_knows) std::printf("  join: the joiner did NOT learn everyone within 120 s\n");
  std::fflush(stdout);

  // ---- A failure ----
  const size_t victim = (args.seed * 7919) % n;
  const std::string victim_name = SimCluster::Name(victim);
  uint64_t first_suspect = 0, first_dead = 0;
  size_t dead_count = 0;
  c.on_event([&](uint64_t now, size_t, const MemberEvent& e) {
    if (e.name != victim_name) return;
    if (e.to == MemberState::kSuspect && first_suspect == 0) first_suspect = now;
    if (e.to == MemberState::kDead) {
      if (first_dead == 0) first_dead = now;
      ++dead_count;
    }
  });
  c.RunFor(5000);
  const uint64_t t_kill = c.now();
  c.Kill(victim);
  bool detected =
      c.RunUntil([&] { return c.AllSee(victim, MemberState::kDead); }, t_kill + 300000, 100);
  const uint64_t min_ms =
      gossync::core::SuspicionMinMs(cfg.suspicion_mult, n, cfg.probe_interval_ms);
  std::printf(
      "  failure: first suspicion after %.1f s, first dead %.1f s, %s %.1f s "
      "(suspicion min %.1f s, max %.1f s)\n",
      (first_suspect - t_kill) / 1000.0, (first_dead - t_kill) / 1000.0,
      detected ? "all dead" : "NOT all dead by", (c.now() - t_kill) / 1000.0, min_ms / 1000.0,
      min_ms * cfg.suspicion_max_mult / 1000.0);
  std::fflush(stdout);

  // ---- Loss ----
  c.RunFor(10000);
  auto link = c.net().link();
  link.loss = args.loss;
  c.net().set_link(link);
  uint64_t false_dead_events = 0, suspect_events = 0;
  std::vector<bool> falsely_dead(n + 1, false);
  size_t falsely_dead_members = 0;
  c.on_event([&](uint64_t, size_t, const MemberEvent& e) {
    if (e.name == victim_name) return;
    if (e.to == MemberState::kSuspect) ++suspect_events;
    if (e.to == MemberState::kDead) {
      ++false_dead_events;
      size_t who = std::strtoul(e.name.c_str() + 1, nullptr, 10);
      if (!falsely_dead[who]) {
        falsely_dead[who] = true;
        ++falsely_dead_members;
      }
    }
  });
  uint64_t ref0 = 0;
  for (size_t i = 0; i <= n; ++i) {
    if (c.up(i)) ref0 += c.node(i).stats().refutations;
  }
  b0 = c.bytes_sent();
  p0 = c.net().counters().sent;
  const double loss_s = args.minutes * 60;
  c.RunFor(static_cast<uint64_t>(loss_s * 1000));
  uint64_t ref1 = 0;
  for (size_t i = 0; i <= n; ++i) {
    if (c.up(i)) ref1 += c.node(i).stats().refutations;
  }
  const double bytes_loss = double(c.bytes_sent() - b0) / n / loss_s;
  std::printf(
      "  %.0f%% loss, %.0f min: false deaths: %zu members (%llu dead events), %llu suspect "
      "events, %llu refutations; %.0f bytes/node/s, %.2f packets/node/s\n",
      args.loss * 100, args.minutes, falsely_dead_members,
      static_cast<unsigned long long>(false_dead_events),
      static_cast<unsigned long long>(suspect_events), static_cast<unsigned long long>(ref1 - ref0),
      bytes_loss, double(c.net().counters().sent - p0) / n / loss_s);
  std::printf("  %.1f s wall for %.0f simulated s, peak RSS %ld MB\n", Seconds(wall),
              (c.now() - 1000) / 1000.0, PeakRssMb());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--nodes" && v) {
      args.nodes.clear();
      for (char* s = argv[++i]; *s;) {
        args.nodes.push_back(std::strtoul(s, &s, 10));
        if (*s == ',') ++s;
      }
    } else if (a == "--seed" && v) {
      args.seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--minutes" && v) {
      args.minutes = std::atof(argv[++i]);
    } else if (a == "--loss" && v) {
      args.loss = std::atof(argv[++i]);
    } else if (a == "--broadcast-ms" && v) {
      args.broadcast_ms = std::atoll(argv[++i]);
    } else if (a == "--sync-ms" && v) {
      args.sync_ms = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--nodes 1000,10000] [--seed 1] [--minutes 10] [--loss 0.05]"
                   " [--broadcast-ms 200] [--sync-ms 30000]\n",
                   argv[0]);
      return 2;
    }
  }
  std::string nodes;
  for (size_t n : args.nodes) {
    if (!nodes.empty()) nodes += ',';
    nodes += std::to_string(n);
  }
  char cmd[512];
  int len = std::snprintf(cmd, sizeof cmd, "%s --nodes %s --seed %llu --minutes %g --loss %g",
                          argv[0], nodes.c_str(), static_cast<unsigned long long>(args.seed),
                          args.minutes, args.loss);
  if (args.broadcast_ms >= 0 && len > 0 && len < int(sizeof cmd)) {
    len += std::snprintf(cmd + len, sizeof cmd - len, " --broadcast-ms %lld",
                         static_cast<long long>(args.broadcast_ms));
  }
  if (args.sync_ms >= 0 && len > 0 && len < int(sizeof cmd)) {
    std::snprintf(cmd + len, sizeof cmd - len, " --sync-ms %lld",
                  static_cast<long long>(args.sync_ms));
  }
  std::printf("rerun: %s\n", cmd);
  for (size_t n : args.nodes) Run(n, args);
  std::printf("\nrerun: %s\n", cmd);
  return 0;
}
