// A simulated datagram network for the gossip simulator: loss, delay drawn
// from a distribution, duplication, and partitions (symmetric or one-way)
// between groups of nodes. Deterministic: every draw comes from one
// generator seeded at construction.
//
// It decides the fate of each datagram; SimCluster (sim_cluster.h) queues the
// deliveries on the simulated clock.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace gossync::testing {

struct LinkModel {
  double loss = 0.0;               // probability a datagram is lost
  double duplicate = 0.0;          // probability it arrives twice
  uint32_t delay_min_ms = 1;       // one-way delay: min + Exp(mean_extra), capped at max
  double delay_mean_extra_ms = 2;  // (a LAN: 1 ms + a few ms of queueing tail)
  uint32_t delay_max_ms = 100;
};

struct NetworkCounters {
  uint64_t sent = 0;
  uint64_t lost = 0;
  uint64_t blocked = 0;     // dropped by a partition
  uint64_t duplicated = 0;  // extra copies delivered
  uint64_t to_down = 0;     // addressed to a node that is not running
};

class SimNetwork {
 public:
  SimNetwork(size_t nodes, uint64_t seed, LinkModel link)
      : rng_(seed), link_(link), group_(nodes, 0) {}

  const LinkModel& link() const { return link_; }
  void set_link(LinkModel link) { link_ = link; }

  // ---- Partitions. Every node starts in group 0 and nothing is blocked. ----
  void SetGroup(size_t node, uint16_t group) { group_.at(node) = group; }
  uint16_t group(size_t node) const { return group_.at(node); }
  // Datagrams from group `from` to group `to` are dropped (one way).
  void Block(uint16_t from, uint16_t to) { blocked_.insert({from, to}); }
  void BlockBoth(uint16_t a, uint16_t b) {
    Block(a, b);
    Block(b, a);
  }
  // Lifts every block; groups stay as they are.
  void Heal() { blocked_.clear(); }
  bool Blocked(size_t from, size_t to) const {
    return !blocked_.empty() && blocked_.count({group_[from], group_[to]}) > 0;
  }

  // The fate of one datagram: how many copies arrive (0, 1 or 2) and after
  // which delays (ms).
  int Route(size_t from, size_t to, uint64_t delays[2]) {
    ++counters_.sent;
    if (Blocked(from, to)) {
      ++counters_.blocked;
      return 0;
    }
    if (Chance(link_.loss)) {
      ++counters_.lost;
      return 0;
    }
    delays[0] = Delay();
    if (Chance(link_.duplicate)) {
      ++counters_.duplicated;
      delays[1] = Delay();
      return 2;
    }
    return 1;
  }

  NetworkCounters& counters() { return counters_; }
  const NetworkCounters& counters() const { return counters_; }

 private:
  bool Chance(double p) {
    if (p <= 0) return false;
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p;
  }
  uint64_t Delay() {
    double extra = 0;
    if (link_.delay_mean_extra_ms > 0) {
      extra = std::exponential_distribution<double>(1.0 / link_.delay_mean_extra_ms)(rng_);
    }
    double d = link_.delay_min_ms + extra;
    return static_cast<uint64_t>(std::min<double>(std::floor(d), link_.delay_max_ms));
  }

  std::mt19937_64 rng_;
  LinkModel link_;
  std::vector<uint16_t> group_;
  std::set<std::pair<uint16_t, uint16_t>> blocked_;
  NetworkCounters counters_;
};

}  // namespace gossync::testing
