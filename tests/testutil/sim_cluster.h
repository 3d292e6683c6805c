// Many core::Membership instances in one process, on a simulated clock and a
// simulated network (sim_network.h): the gossip simulator. Discrete events
// (deliveries and ticks) run in (time, sequence) order, so a run is a pure
// function of its options and seed; TraceHash() condenses every member event
// of a run to compare two runs.
//
// Nodes are n0, n1, ...; node i listens at 10.x.y.z:7946 (its index in the
// low three bytes). Single-threaded.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/core/gossip_types.h"
#include "agent/core/membership.h"
#include "tests/testutil/sim_network.h"

namespace gossync::testing {

struct SimOptions {
  size_t nodes = 10;
  uint64_t seed = 1;
  LinkModel link;
  core::MembershipConfig base;  // name, addresses, boot id, rng seed and seeds are set per node
  size_t seed_count = 1;        // nodes 0..seed_count-1 are every node's seeds
  bool warm_start = false;      // every node starts knowing every other (Bootstrap)
  uint64_t start_ms = 1000;
  // Stagger of node start times (node i starts at start_ms + i * stagger_ms).
  uint64_t stagger_ms = 0;
  // The last `late_nodes` nodes are not started (nor known in a warm start)
  // until Start(i).
  size_t late_nodes = 0;
};

class SimCluster {
 public:
  using EventHook = std::function<void(uint64_t now, size_t node, const core::MemberEvent&)>;
  using RootHook = std::function<void(uint64_t now, size_t node, const core::RootDiffers&)>;

  explicit SimCluster(SimOptions opts)
      : opts_(std::move(opts)), net_(opts_.nodes, Mix(opts_.seed, 0xfeed), opts_.link) {
    now_ = opts_.start_ms;
    nodes_.resize(opts_.nodes);
    for (size_t i = 0; i < opts_.nodes; ++i) {
      std::string addr = Addr(i);
      addr_to_node_.emplace(addr, i);
      names_.push_back(Name(i));
      infos_.push_back(core::MakeMemberInfo(Name(i), addr, RepairAddr(i)));
    }
    const size_t early = opts_.nodes - std::min(opts_.late_nodes, opts_.nodes);
    for (size_t i = 0; i < early; ++i) Boot(i, opts_.start_ms + i * opts_.stagger_ms, 0);
    if (opts_.warm_start) {
      std::vector<core::MemberUpdate> all;
      all.reserve(early);
      for (size_t i = 0; i < early; ++i) {
        all.push_back({core::MemberState::kAlive,
                       nodes_[i].m->incarnation(),
                       infos_[i],
                       nodes_[i].m->boot_id(),
                       {}});
      }
      for (size_t i = 0; i < early; ++i) nodes_[i].m->Bootstrap(now_, all);
    }
  }

  // (Built by appending: GCC 12 at -O3 warns falsely on "lit" + std::string.)
  static std::string Name(size_t i) {
    std::string s("n");
    s += std::to_string(i);
    return s;
  }
  static std::string Addr(size_t i) { return Host(i) + ":7946"; }
  static std::string RepairAddr(size_t i) { return Host(i) + ":7947"; }
  static std::string Host(size_t i) {
    std::string s("10.");
    s += std::to_string((i >> 16) & 255);
    s += '.';
    s += std::to_string((i >> 8) & 255);
    s += '.';
    s += std::to_string(i & 255);
    return s;
  }

  size_t size() const { return nodes_.size(); }
  uint64_t now() const { return now_; }
  core::Membership& node(size_t i) { return *nodes_.at(i).m; }
  bool up(size_t i) const { return nodes_.at(i).up; }
  SimNetwork& net() { return net_; }
  void on_event(EventHook hook) { event_hook_ = std::move(hook); }
  void on_root_differs(RootHook hook) { root_hook_ = std::move(hook); }

  // ---- Running ----
  // Runs every event up to and including time t.
  void RunUntil(uint64_t t) {
    while (!queue_.empty() && queue_.top().time <= t) Step();
    now_ = std::max(now_, t);
  }
  void RunFor(uint64_t ms) { RunUntil(now_ + ms); }
  // Runs until `done()` holds, checked every `every_ms` of simulated time;
  // false if `deadline` passed first.
  bool RunUntil(const std::function<bool()>& done, uint64_t deadline, uint64_t every_ms = 100) {
    while (!done()) {
      if (now_ >= deadline) return false;
      RunUntil(std::min(deadline, now_ + every_ms));
    }
    return true;
  }

  // ---- Faults ----
  // The process stops: no ticks, datagrams to it are lost, state is kept
  // (SIGSTOP). Resume continues it where it was (SIGCONT).
  void Pause(size_t i) { nodes_.at(i).up = false; }
  void Resume(size_t i) {
    nodes_.at(i).up = true;
    ScheduleTick(i, now_);
  }
  // The process dies (state lost). Restart boots a new process under the same
  // name and address: a greater boot id, and incarnation `incarnation` (0: the
  // start time in seconds, as the daemon does).
  void Kill(size_t i) { nodes_.at(i).up = false; }
  void Restart(size_t i, uint64_t incarnation = 0) { Boot(i, now_, incarnation); }
  // Starts a late node (SimOptions::late_nodes) now.
  void Start(size_t i) { Boot(i, now_, 0); }
  void Leave(size_t i) {
    core::Actions a;
    nodes_.at(i).m->Leave(now_, &a);
    Process(i, &a);
  }

  // ---- Observation ----
  // Node i's view of node j's state; nullopt if i does not know j.
  std::optional<core::MemberState> StateOf(size_t i, size_t j) const {
    if (nodes_.at(i).m == nullptr) return std::nullopt;  // a late node not started
    return nodes_[i].m->StateOf(names_[j]);
  }
  // Every running node other than j sees j in `state`.
  bool AllSee(size_t j, core::MemberState state) const {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (i == j || !nodes_[i].up) continue;
      if (StateOf(i, j) != state) return false;
    }
    return true;
  }
  // Every running node sees every other running node alive.
  bool Converged() const {
    const size_t running = Running();
    // The counts first: O(N), and they rule out most states that are not.
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].up && nodes_[i].m->Count(core::MemberState::kAlive) != running - 1) {
        return false;
      }
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i].up) continue;
      for (size_t j = 0; j < nodes_.size(); ++j) {
        if (j != i && nodes_[j].up && StateOf(i, j) != core::MemberState::kAlive) return false;
      }
    }
    return true;
  }
  size_t Running() const {
    size_t n = 0;
    for (const auto& s : nodes_) n += s.up ? 1 : 0;
    return n;
  }
  // FNV-1a over every member event (time, node, member, from, to,
  // incarnation) and every send (time, from, to, size) so far.
  uint64_t TraceHash() const { return trace_; }
  uint64_t events() const { return event_count_; }
  uint64_t packets_delivered() const { return delivered_; }
  uint64_t bytes_sent() const { return bytes_; }  // encoded + seal overhead
  // Sent packets and bytes by core::MessageType (index = the type's value).
  using PerType = std::array<uint64_t, 8>;
  const PerType& packets_by_type() const { return packets_by_type_; }
  const PerType& bytes_by_type() const { return bytes_by_type_; }

 private:
  struct NodeState {
    std::unique_ptr<core::Membership> m;
    bool up = false;
    uint64_t tick_at = UINT64_MAX;  // the tick event that counts; others are stale
    uint64_t boots = 0;
  };
  struct Event {
    uint64_t time;
    uint64_t seq;
    size_t node;
    int64_t packet;  // index into packets_, or -1 for a tick
    size_t from;
    bool operator>(const Event& o) const { return time != o.time ? time > o.time : seq > o.seq; }
  };

  static uint64_t Mix(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  void Boot(size_t i, uint64_t at, uint64_t incarnation) {
    NodeState& s = nodes_[i];
    core::MembershipConfig c = opts_.base;
    c.name = Name(i);
    c.gossip_addr = Addr(i);
    c.repair_addr = RepairAddr(i);
    // As the daemon does it: the start time in the high bits (a restart gets
    // a greater boot id), random low bits (two nodes started in the same
    // millisecond still differ); the incarnation from the start time too.
    c.boot_id = (at << 16) | (Mix(Mix(opts_.seed, i), ++s.boots) & 0xffff);
    c.rng_seed = Mix(c.boot_id, 7);
    c.initial_incarnation = incarnation != 0 ? incarnation : at / 1000;
    c.seeds.clear();
    for (size_t k = 0; k < opts_.seed_count && k < opts_.nodes; ++k) c.seeds.push_back(Addr(k));
    s.m = std::make_unique<core::Membership>(std::move(c));
    s.up = true;
    s.tick_at = UINT64_MAX;
    ScheduleTick(i, at);
  }

  void ScheduleTick(size_t i, uint64_t at) {
    NodeState& s = nodes_[i];
    at = std::max(at, now_);
    if (at >= s.tick_at) return;
    s.tick_at = at;
    queue_.push(Event{at, next_seq_++, i, -1, 0});
  }

  void Step() {
    Event e = queue_.top();
    queue_.pop();
    now_ = e.time;
    NodeState& s = nodes_[e.node];
    core::Actions a;
    if (e.packet < 0) {
      if (e.time != s.tick_at) return;  // superseded
      s.tick_at = UINT64_MAX;
      if (!s.up) return;
      s.m->Tick(now_, &a);
    } else {
      core::Packet p = std::move(packets_[e.packet]);
      free_.push_back(e.packet);
      if (!s.up) {
        ++net_.counters().to_down;
        return;
      }
      ++delivered_;
      s.m->HandlePacket(now_, Addr(e.from), p, &a);
    }
    Process(e.node, &a);
  }

  void Process(size_t i, core::Actions* a) {
    for (core::Outgoing& o : a->sends) {
      auto it = addr_to_node_.find(o.to);
      size_t size = core::EncodedSize(o.packet) + core::kSealOverhead;
      bytes_ += size;
      const auto type = static_cast<size_t>(core::TypeOf(o.packet.body));
      ++packets_by_type_[type];
      bytes_by_type_[type] += size;
      Hash(now_);
      Hash(i);
      Hash(size);
      if (it == addr_to_node_.end()) continue;
      size_t to = it->second;
      Hash(to);
      uint64_t delays[2];
      int copies = net_.Route(i, to, delays);
      for (int c = 0; c < copies; ++c) {
        int64_t slot;
        if (!free_.empty()) {
          slot = free_.back();
          free_.pop_back();
          packets_[slot] = c + 1 < copies ? o.packet : std::move(o.packet);
        } else {
          slot = static_cast<int64_t>(packets_.size());
          packets_.push_back(c + 1 < copies ? o.packet : std::move(o.packet));
        }
        queue_.push(Event{now_ + delays[c], next_seq_++, to, slot, i});
      }
    }
    for (const core::MemberEvent& ev : a->events) {
      ++event_count_;
      Hash(now_);
      Hash(i);
      for (char ch : ev.name) Hash(static_cast<uint8_t>(ch));
      Hash(ev.from ? static_cast<uint64_t>(*ev.from) : 99);
      Hash(ev.to ? static_cast<uint64_t>(*ev.to) : 99);
      Hash(ev.incarnation);
      if (event_hook_) event_hook_(now_, i, ev);
    }
    if (root_hook_) {
      for (const core::RootDiffers& r : a->root_differs) root_hook_(now_, i, r);
    }
    ScheduleTick(i, nodes_[i].m->NextTickMs());
  }

  void Hash(uint64_t v) {
    for (int b = 0; b < 8; ++b) {
      trace_ ^= (v >> (8 * b)) & 0xff;
      trace_ *= 0x100000001b3ull;
    }
  }

  SimOptions opts_;
  SimNetwork net_;
  uint64_t now_ = 0;
  std::vector<NodeState> nodes_;
  std::vector<core::MemberInfoPtr> infos_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> addr_to_node_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  uint64_t next_seq_ = 0;
  std::vector<core::Packet> packets_;
  std::vector<int64_t> free_;
  EventHook event_hook_;
  RootHook root_hook_;
  uint64_t trace_ = 0xcbf29ce484222325ull;
  uint64_t event_count_ = 0;
  uint64_t delivered_ = 0;
  uint64_t bytes_ = 0;
  PerType packets_by_type_{};
  PerType bytes_by_type_{};
};

}  // namespace gossync::testing
