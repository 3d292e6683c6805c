// Tombstone expiry and catch-up mode (DESIGN.md section 1; the reasoning is
// in docs/tombstones.md). Pure: every time is passed in.
//
// A tombstone is purged once its HLC is older than tombstone_ttl. A node
// that was away longer than that may still hold files whose deletions every
// other node has forgotten: it is in catch-up mode until a session with a
// current peer completes, and in that mode an entry a current peer lacks and
// that it has not changed since its last sync is taken as deleted.
#pragma once

#include <cstdint>

namespace gossync::core {

// Where a node stands with respect to the cluster's deletions.
enum class SyncMode : uint8_t {
  kCurrent,  // reconciled with a current peer within tombstone_ttl
  kCatchUp,  // reconciled before, but longer ago than tombstone_ttl
  kNew,      // never reconciled (a new node, or a new index): what it lacks says nothing
};

// "current", "catch_up", "new".
const char* SyncModeName(SyncMode mode);

// The last moment this node's dataset was known reconciled with the cluster.
struct SyncPoint {
  uint64_t wall_ms = 0;  // wall clock, ms since the epoch; 0: never
  uint64_t counter = 0;  // this node's change counter then: local changes above it are later
  bool operator==(const SyncPoint&) const = default;
};

// How long before the ttl runs out catch-up begins: min(ttl / 10, 1 day). A
// sync point is a little optimistic (a delete made just before it may reach
// this node a little later, and gossip's roots are a little old), and clocks
// disagree a little; the margin covers both.
uint64_t CatchUpGraceMs(uint64_t ttl_ms);

// kNew if `p` is unset, kCatchUp if it is more than ttl - grace before
// `now_ms`, else kCurrent. ttl_ms 0 (nothing expires) never gives kCatchUp.
SyncMode ModeAt(const SyncPoint& p, uint64_t now_ms, uint64_t ttl_ms);

// The HELLO flags that announce `mode` (kHelloCatchUp, kHelloUnsynced or none).
uint32_t HelloFlagsFor(SyncMode mode);

// Whether a peer that sent HELLO `flags` is current: neither catching up nor
// new. Only a current peer's lack of an entry is evidence of a deletion.
bool PeerIsCurrent(uint32_t flags);

// Whether a session that finished (not a dry run) with a peer that sent
// HELLO `peer_flags` makes this node, in `self` mode at the session's start,
// current as of that start. A catching-up peer never does; a new peer does
// for a node that is not catching up (so that a cluster of new nodes, e.g.
// right after an upgrade, becomes current), never for one that is.
bool SessionIsSyncPoint(SyncMode self, uint32_t peer_flags);

// Whether a version stamped `hlc` is older than `ttl_ms` at wall time
// `now_ms` (its HLC milliseconds + ttl < now). ttl_ms 0: never.
bool OlderThanTtl(uint64_t hlc, uint64_t now_ms, uint64_t ttl_ms);

}  // namespace gossync::core
