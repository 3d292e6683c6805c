// The settings of core::Membership, each with its unit and default. Defaults
// follow memberlist's DefaultLANConfig where the two protocols agree; the
// daemon fills this from gossync::Config (include/gossync/config.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/core/gossip_types.h"
#include "gossync/status.h"

namespace gossync::core {

struct MembershipConfig {
  // ---- Identity ----
  std::string name;                  // this node (IsValidNodeName); unique in the cluster
  std::string gossip_addr;           // advertised UDP address; "" = peers use the source address
  std::string repair_addr;           // advertised TCP address of the repair service (may be "")
  uint64_t boot_id = 0;              // != 0, greater at every process start, unique in the cluster:
                                     // max((unix ms << 16) | 16 random bits, persisted last + 1)
  uint64_t initial_incarnation = 0;  // above any incarnation of an earlier run: unix
                                     // seconds; if not, refutation catches up
  uint64_t rng_seed = 0;             // seeds every random choice (targets, probe ids, jitter)
  std::vector<std::string> seeds;    // gossip addresses ("host:port") to join through

  // ---- Failure detection (SWIM + Lifeguard) ----
  uint32_t probe_interval_ms = 1000;  // protocol period: one member probed per period
  uint32_t probe_timeout_ms = 500;    // direct ack deadline, then indirect probes
  uint32_t indirect_checks = 3;       // k members asked to probe on our behalf
  uint32_t suspicion_mult = 4;        // suspect for >= mult * max(1, log10(N)) * probe_interval
  uint32_t suspicion_max_mult = 6;    // ... and at most that many times longer with no
                                      // independent confirmation (Lifeguard)
  uint32_t retransmit_mult = 4;       // an update is piggybacked mult * ceil(log10(N+1)) times

  // ---- Root exchange ----
  uint32_t gossip_interval_ms = 1000;  // a gossip round, jittered by +-gossip_jitter_pct
  uint32_t gossip_jitter_pct = 10;
  uint32_t gossip_fanout = 2;            // members a round gossips to
  uint32_t gossip_to_dead_ms = 30000;    // dead members stay gossip targets this long, to
                                         // hear that they are dead and refute
  uint32_t broadcast_interval_ms = 200;  // while updates wait to be piggybacked, they also go
                                         // out this often to fanout members (memberlist's
                                         // GossipInterval); 0 = only with probes and rounds

  // ---- Joining, healing, forgetting ----
  uint32_t join_retry_ms = 1000;           // first retry of the seeds while none answers...
  uint32_t join_retry_max_ms = 30000;      // ... doubling up to this
  uint32_t seed_rejoin_ms = 60000;         // a joined node pings a random seed this often
                                           // (times ScaleFactor(N)), so partitions whose
                                           // members were reaped find each other; 0 = never
  uint32_t sync_interval_ms = 30000;       // member-list pull from a random member this often
                                           // (times ScaleFactor(N)); 0 = only when joining
  uint32_t reconnect_interval_ms = 10000;  // a random dead member is pinged this often; 0 = never
  uint64_t dead_reap_ms = 3600 * 1000;     // dead and left members are forgotten after this

  // ---- Bounds ----
  size_t max_packet_bytes = kDefaultMaxPacketBytes;  // encoded, before sealing
  size_t max_members = 65536;                        // members held; more are dropped and counted
  size_t max_broadcasts = 4096;  // queued piggyback updates (one per member at most)
  size_t max_pending = 64;       // outstanding challenges, join pings and relayed probes

  // Every problem, naming the field ("gossip_fanout: must be 1..16").
  Status Validate() const;
};

// memberlist's pushPullScale: 1 up to 32 live members, then
// 1 + ceil(log2(N) - log2(32)), so periodic whole-list work stays flat per
// member as the cluster grows.
uint32_t ScaleFactor(size_t n);

}  // namespace gossync::core
