// Cluster membership, failure detection and the root exchange (DESIGN.md
// section 3): SWIM with the Lifeguard refinements, as a pure state machine.
//
// Driven by (now, packet) and (now) alone; it returns actions. No I/O, no
// clock, no randomness of its own (every choice comes from a generator seeded
// by MembershipConfig::rng_seed), so the same class runs in the daemon, in
// unit tests and in the simulator of thousands of nodes (tests/sim).
//
// How the daemon drives it (agent/daemon):
//   - Construct with a validated MembershipConfig: at every start a boot_id
//     greater than the last run's (membership_config.h), an rng_seed from
//     RAND_bytes, initial_incarnation = unix seconds.
//   - Call Tick(now) when NextTickMs() comes (a libuv timer re-armed after
//     every call into this class), with `now` from a monotonic ms clock.
//   - For every datagram that opens (tls::Open) and decodes
//     (wire::DecodeGossipPacket): HandlePacket(now, source "host:port", packet).
//   - Carry out the Actions: encode, seal and send each Outgoing to its
//     address; hand each RootDiffers to the repair scheduler; log the events.
//   - SetLocalState whenever the Merkle root changes; SetSeeds on SIGHUP;
//     Leave on SIGTERM, then keep ticking for about one gossip interval so the
//     left state goes out, then exit.
//
// Protocol in brief (details at the .cc's functions):
//   - One member probed per probe interval, round-robin over a shuffled list
//     (so each is probed within N periods); no ack within probe_timeout:
//     indirect probes through indirect_checks others; none by the end of the
//     period: the member is suspect. Suspicion lasts between
//     suspicion_mult*max(1,log10 N)*interval and suspicion_max_mult times
//     that, shorter the more members independently suspect it; then dead.
//   - Updates (alive, suspect, dead, left at an incarnation) are piggybacked
//     on every packet, each retransmit_mult*ceil(log10(N+1)) times. A member
//     that hears itself suspected or dead bumps its incarnation (refutes).
//     Precedence for one member: a higher incarnation wins; at equal
//     incarnations left > dead > suspect > alive. Dead and left members are
//     forgotten after dead_reap_ms; a dead member returns only with a higher
//     incarnation.
//   - Every gossip interval: a Gossip (root, entry count, HLC) to fanout
//     random live members; a received root that differs from ours yields
//     RootDiffers. While updates are queued, such rounds also run every
//     broadcast_interval, to carry them.
//   - Joining: join pings (a Ping addressed to no one) to every seed,
//     retried with doubling backoff while none answers; the first that
//     answers is asked for its member list (SyncRequest/SyncPage, one page
//     per request), and a random member again 5, 10, 20... s later.
//   - Healing: a member list is pulled from a random member every
//     sync_interval (scaled with N, as memberlist's push-pull); a random seed
//     is pinged every seed_rejoin interval; a random dead member every
//     reconnect interval (it refutes if it was only cut off); dead members
//     stay gossip targets for gossip_to_dead_ms.
//
// Identity. A member is its name. An alive claim for a known name from
// another gossip address is accepted only while the known holder is suspect,
// dead or left (it moved, or restarted elsewhere); while the holder is alive
// the claim is a conflict: dropped, counted (Drop::kNameConflict) and
// reported (Actions::conflicts). A node that hears its own name claimed from
// another address does not refute it (two nodes with one name would
// otherwise outbid each other's incarnations forever); it reports the
// conflict.
//
// Replay protection. Every packet carries the sender's boot id, which is
// greater at every start of the process (the daemon makes it from the wall
// clock: ms << 16 | 16 random bits), and a sequence number that grows by one
// per packet in that run. It also names its receiver: name and boot id as the
// sender knows them (alive updates carry boot ids, so every member knows every
// other's). We keep, per member, the newest boot id we know of and a 64-packet
// sliding window (ReplayWindow) over the sequence numbers of the run we hear
// from. A packet is dropped, and counted, when:
//   - it is meant for another node or another run of ours (kNotForUs): a
//     replay across receivers, or a replay from before our restart;
//   - it comes from an older run of the sender than the newest we know
//     (kStaleBoot): a replay of a dead run;
//   - its sequence number was seen, or is more than 64 behind the newest
//     (kReplay, kTooOld).
// A restarted sender (sequence back at 1, greater boot id) is accepted at
// once: its first packet moves us to the new run. A receiver that restarted
// learns nothing stale either: packets addressed to its old run are dropped,
// a ping among them gets a bare Ack, and any other a Ping back (a challenge),
// whose header teaches the sender the new boot id. What the scheme cannot
// tell from a late delivery is a packet of the current run, addressed to us,
// that we never received and that is replayed before any later one arrives:
// it is processed once, as a late datagram would be; incarnation rules keep
// its claims harmless.
// Boot ids must grow across restarts: the daemon persists the last one and
// takes max(clock-based, last + 1). If they do not (clock stepped back, state
// lost), the new run is heard only once SWIM has declared the old one dead
// (a smaller boot id is accepted for a dead or left member, never for a live
// one, so a replay of an old run cannot displace a live run).
// Incarnations play no part in packet freshness: they order claims.
//
// Not thread-safe: one owner (the loop thread).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/core/broadcast_queue.h"
#include "agent/core/gossip_types.h"
#include "agent/core/member_table.h"
#include "agent/core/membership_config.h"
#include "agent/core/membership_types.h"
#include "agent/core/suspicion.h"

namespace gossync::core {

// ---- The state machine -------------------------------------------------------

class Membership {
 public:
  // REQUIRES: config.Validate().ok().
  explicit Membership(MembershipConfig config);
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Runs whatever is due at `now`. `now` never decreases between calls.
  void Tick(uint64_t now_ms, Actions* out);
  // When Tick next has work; a time <= now means "now". Changes after every
  // call into this class.
  uint64_t NextTickMs() const;

  // A decoded packet from `from_addr` (its UDP source, "host:port").
  void HandlePacket(uint64_t now_ms, std::string_view from_addr, const Packet& packet,
                    Actions* out);

  // Our dataset, as the next Gossip advertises it.
  void SetLocalState(const Hash256& root, uint64_t entry_count, uint64_t hlc);
  // Gossips our state now, to gossip_fanout random members, instead of at
  // the next round: the daemon calls it when the root changes, so a change
  // starts spreading at once. Nothing before the first Tick or after Leave.
  void PushState(uint64_t now_ms, Actions* out);
  // Replaces the seed list (SIGHUP).
  void SetSeeds(std::vector<std::string> seeds);
  // Adds members known from elsewhere (a member list persisted by the last
  // run; the simulator's warm start) as alive at their incarnation, without
  // broadcasting them or reporting events. Members we already know, and
  // updates not kAlive, are skipped. Wrong entries are harmless: they are
  // probed like any member, and go suspect and dead.
  void Bootstrap(uint64_t now_ms, const std::vector<MemberUpdate>& members);
  // Graceful leave: broadcasts that we left, to max(fanout, 3) members at
  // once and to fanout more per later gossip round. Probing and joining
  // stop; pings are still answered (with our left state). Final.
  void Leave(uint64_t now_ms, Actions* out);

  // ---- Views ----
  const std::string& name() const { return self_->name; }
  uint64_t incarnation() const { return incarnation_; }
  MemberState state() const { return self_state_; }
  uint64_t boot_id() const { return config_.boot_id; }
  bool joined() const { return joined_; }
  // Members we know (not ourselves), in no particular order.
  std::vector<MemberView> Members() const;
  std::optional<MemberView> Find(std::string_view name) const;
  // Find without the copy: the member's state, nullopt if unknown.
  std::optional<MemberState> StateOf(std::string_view name) const;
  size_t Count(MemberState s) const { return count_[static_cast<int>(s)]; }
  // Alive and suspect members, ourselves included: the N of the scaling rules.
  size_t ClusterSize() const;
  const MembershipStats& stats() const { return stats_; }
  const BroadcastQueue& broadcasts() const { return queue_; }
  const MembershipConfig& config() const { return config_; }

 private:
  enum class Origin { kDirect, kPiggyback, kSync };
  enum class PendingKind { kJoin, kChallenge, kReconnect };
  struct PendingPing {
    uint64_t probe_id;
    std::string name;  // empty for a join ping (the seed's name is unknown)
    uint64_t expires_ms;
    PendingKind kind;
  };
  // Where a packet goes: an address, and the receiver's name and boot id as
  // we know them (empty and 0 for a join ping to a seed's address).
  struct Dest {
    std::string addr;
    std::string name;
    uint64_t boot = 0;
  };
  struct Relay {
    uint64_t our_id;
    uint64_t their_id;
    Dest reply;
    uint64_t expires_ms;
  };
  struct Probe {
    bool active = false;
    bool acked = false;
    bool indirect_sent = false;
    uint32_t slot = 0;
    std::string target;
    uint64_t incarnation = 0;
    uint64_t probe_id = 0;
    uint64_t start_ms = 0;
  };
  struct SyncState {
    bool active = false;
    Dest peer;
    uint32_t cursor = 0;
    uint64_t deadline_ms = 0;
    int retries = 0;
  };

  // membership.cc: the rules for updates.
  void Apply(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out);
  void ApplyAlive(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out);
  void ApplySuspect(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out);
  void ApplyDeadOrLeft(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out);
  void ApplyAboutSelf(const MemberUpdate& u, Actions* out);
  void Refute(uint64_t accused_incarnation);
  void SetState(uint32_t slot, MemberState to, uint64_t now, Actions* out);
  uint32_t AddMember(uint64_t now, const MemberUpdate& u, bool report, Actions* out);
  void StartSuspicion(uint64_t now, uint32_t slot, std::string_view raised_by);
  void StopSuspicion(uint32_t slot);
  void ExpireSuspicions(uint64_t now, Actions* out);
  void Reap(uint64_t now, Actions* out);
  MemberUpdate SelfUpdate() const;
  MemberView View(const MemberRecord& m) const;

  // membership_net.cc: packets.
  void Start(uint64_t now);
  void HandleBody(uint64_t now, std::string_view from_addr, const Packet& p, bool sender_was_live,
                  Actions* out);
  void HandleAck(uint64_t now, const Packet& p, const Ack& ack, bool sender_was_live, Actions* out);
  void Challenge(uint64_t now, std::string_view name, std::string_view addr, uint64_t boot,
                 Actions* out);
  static Dest DestOf(const MemberRecord& m);
  Packet MakePacket(const Dest& to, Body body);
  void Emit(std::string addr, Packet p, Actions* out);
  void Send(Dest to, Body body, bool piggyback, Actions* out);
  void SendPingTo(uint64_t now, Dest to, uint64_t target_inc, MemberState target_state,
                  PendingKind kind, Actions* out);
  void TickJoin(uint64_t now, Actions* out);
  void TickProbe(uint64_t now, Actions* out);
  void StartProbe(uint64_t now, Actions* out);
  void ProbeFailed(uint64_t now, Actions* out);
  void GossipRound(uint64_t now, size_t fanout, Actions* out);
  void TickSync(uint64_t now, Actions* out);
  void StartSync(uint64_t now, Dest peer, Actions* out);
  void ServeSync(const Dest& to, uint32_t cursor, Actions* out);
  void Reconnect(uint64_t now, Actions* out);
  void RebuildProbeOrder();
  std::vector<uint32_t> RandomMembers(size_t k, uint32_t exclude, uint64_t now, bool recent_dead);
  bool IsLive(const MemberRecord& m) const;
  uint64_t Random() { return rng_(); }
  uint64_t Uniform(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  uint64_t Jittered(uint64_t base_ms, uint32_t pct);

  MembershipConfig config_;
  MemberInfoPtr self_;
  MemberState self_state_ = MemberState::kAlive;
  uint64_t incarnation_;
  uint64_t seq_ = 0;
  std::mt19937_64 rng_;

  MemberTable table_;
  std::array<size_t, kMemberStateCount> count_{};
  BroadcastQueue queue_;
  std::unordered_map<uint32_t, SuspicionTimer> suspicions_;  // by slot
  std::set<std::pair<uint64_t, uint32_t>> suspicion_deadlines_;
  std::set<std::pair<uint64_t, uint32_t>> reap_at_;  // dead and left members

  Hash256 root_{};
  uint64_t entry_count_ = 0;
  uint64_t hlc_ = 0;
  bool have_local_state_ = false;

  bool started_ = false;
  bool joined_ = false;
  uint64_t next_probe_ms_ = 0;
  uint64_t next_gossip_ms_ = 0;
  uint64_t next_flush_ms_ = 0;  // the next broadcast flush, while the queue is not empty
  uint64_t next_join_ms_ = 0;
  uint64_t join_backoff_ms_ = 0;
  uint64_t next_seed_ms_ = 0;
  uint64_t next_sync_ms_ = 0;
  uint64_t early_sync_ms_ = 0;  // a newcomer's growing sync interval; 0 = regular
  uint64_t next_reconnect_ms_ = 0;

  std::vector<uint32_t> probe_order_;
  size_t probe_pos_ = 0;
  Probe probe_;
  std::vector<PendingPing> pending_;
  std::vector<Relay> relays_;
  SyncState sync_;

  MembershipStats stats_;
};

}  // namespace gossync::core
