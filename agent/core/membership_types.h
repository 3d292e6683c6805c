// What core::Membership returns and reports: the actions a call asks the
// caller to carry out, its counters, and the member view `gossync peers`
// shows. Plain data.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/gossip_types.h"
#include "agent/core/hash.h"

namespace gossync::core {

// ---- Actions -----------------------------------------------------------------

struct Outgoing {
  std::string to;  // "host:port"
  Packet packet;   // EncodedSize(packet) <= max_packet_bytes
};

// A member advertises a root that differs from ours: a repair candidate.
// Emitted for every such Gossip received from an alive member; the scheduler
// decides (one session per peer, backoff).
struct RootDiffers {
  std::string member;
  std::string repair_addr;
  Hash256 root{};
  uint64_t entry_count = 0;
  uint64_t hlc = 0;
};

// A member appeared, changed state, or was forgotten. For logs and metrics.
struct MemberEvent {
  std::string name;
  std::optional<MemberState> from;  // nullopt: a new member
  std::optional<MemberState> to;    // nullopt: reaped (forgotten)
  uint64_t incarnation = 0;
  std::string gossip_addr;
};

// A node claims a name that a live member holds at another address.
struct NameConflict {
  std::string name;
  std::string known_addr;
  std::string claimed_addr;
};

// What a call asks the caller to do. Calls append; the caller clears.
struct Actions {
  std::vector<Outgoing> sends;
  std::vector<RootDiffers> root_differs;
  std::vector<MemberEvent> events;
  std::vector<NameConflict> conflicts;
  void Clear() {
    sends.clear();
    root_differs.clear();
    events.clear();
    conflicts.clear();
  }
};

// ---- Counters ----------------------------------------------------------------

// Why a packet (or an update in it) changed nothing. Metric labels: DropName.
enum class Drop : uint8_t {
  kReplay,        // sequence number already seen in this run of the sender
  kTooOld,        // more than ReplayWindow::kSize behind the newest seen
  kStaleBoot,     // from an older run of the sender than one we know
  kNotForUs,      // addressed to another node, or to an earlier run of ours
  kFromSelf,      // our own packet came back
  kNameConflict,  // sender or update claims a name held at another address
  kTableFull,     // a new member beyond max_members
  kBusy,          // a relay or challenge beyond max_pending
  kLeaving,       // received after Leave
  kUnsolicited,   // a sync page nobody asked for
};
inline constexpr int kDropCount = 10;
const char* DropName(Drop d);  // "replay", "too_old", ...

struct MembershipStats {
  uint64_t packets_in = 0;
  uint64_t packets_out = 0;
  uint64_t bytes_out = 0;  // EncodedSize, before sealing
  uint64_t updates_in = 0;
  uint64_t probes = 0;
  uint64_t indirect_probes = 0;
  uint64_t suspicions = 0;  // raised by our own failed probes
  uint64_t deaths = 0;      // declared by our own suspicion timers
  uint64_t refutations = 0;
  uint64_t challenges = 0;
  uint64_t join_pings = 0;  // answered join pings (to a seed address)
  uint64_t late_acks = 0;   // acks for probes already finished
  uint64_t sync_pages_served = 0;
  uint64_t sync_pages_received = 0;
  uint64_t broadcasts_evicted = 0;  // piggyback queue overflow
  std::array<uint64_t, kDropCount> drops{};
  uint64_t drop(Drop d) const { return drops[static_cast<int>(d)]; }
};

// A member as `gossync peers` shows it.
struct MemberView {
  std::string name;
  std::string gossip_addr;
  std::string repair_addr;
  MemberState state = MemberState::kAlive;
  uint64_t incarnation = 0;
  uint64_t state_change_ms = 0;  // `now` of the last state change
  uint64_t last_heard_ms = 0;    // `now` of its last packet to us; 0: never
  bool has_root = false;         // it has gossiped its root to us
  Hash256 root{};
  uint64_t entry_count = 0;
  uint64_t hlc = 0;
};

}  // namespace gossync::core
