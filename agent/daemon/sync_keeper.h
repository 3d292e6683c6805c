// The agent's catch-up bookkeeping (docs/tombstones.md), run by a timer
// every KeepSyncIntervalMs:
//  - a current node stays current while it sees the cluster: an alive member
//    gossiping a root equal to ours refreshes the sync point (a quiet,
//    converged cluster has no repair sessions to do it). A node alone is
//    never refreshed this way: a single-node cluster stays `new` (which
//    purges, and has no peer to apply catch-up against), and a node that
//    sees no peer may well be cut off from them;
//  - a node that is not current (catching up, or new) asks an alive member
//    for a session, even with equal roots: the peer's HELLO tells whether it
//    is current, and a finished session with a current peer ends catch-up.
//
// Loop thread.
#pragma once

#include <cstdint>

#include "agent/daemon/gossip_driver.h"
#include "agent/daemon/local_engine.h"
#include "agent/daemon/repair_service.h"

namespace gossync::daemon {

// min(60 s, ttl / 10), at least 1 s.
uint64_t KeepSyncIntervalMs(uint64_t ttl_ms);

// One round. `round` picks the member asked for a session (round robin).
// The pointers must outlive the round's strand item (the agent's members).
void KeepSync(const GossipDriver& gossip, LocalEngine* engine, RepairService* repair,
              uint64_t* round);

}  // namespace gossync::daemon
