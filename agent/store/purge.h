// The tombstone purge (DESIGN.md section 1, docs/tombstones.md): a
// tombstone whose HLC is older than tombstone_ttl leaves the index and the
// Merkle tree. The daemon runs a pass at start and periodically, one bounded
// step per store strand item (each step examines at most rows_per_step index
// rows and commits its purges in one transaction), so that no step holds up
// repair sessions or the scanner for long.
//
// Not while catching up (MayPurge): a returning node's old tombstones may be
// the only record of a delete that another returning node has not seen yet.
//
// Thread: the store thread, like the Replica.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/core/entry.h"
#include "agent/store/fs.h"
#include "agent/store/replica.h"
#include "gossync/status.h"

namespace gossync::store {

struct PurgeOptions {
  uint64_t ttl_ms = 0;          // tombstone_ttl; 0: nothing expires
  size_t rows_per_step = 4096;  // index rows examined per step
};

struct PurgeStepResult {
  std::string next;    // the cursor for the next step; empty: the pass is complete
  size_t scanned = 0;  // index rows examined
  size_t purged = 0;   // tombstones removed
  size_t kept = 0;     // expired, but their directory is still on disk
};

// Whether the replica may purge at wall time `now_ms`: not in catch-up mode.
bool MayPurge(const Replica& replica, uint64_t now_ms, uint64_t ttl_ms);

// Whether the tombstone `t` must stay for now: a directory tombstone whose
// directory is still on disk (kept for files the index does not know, or
// for entries still to be removed; the scanner or a later removal settles
// it, and a later pass purges it).
Result<bool> PurgeBlocked(const RootDir& root, const core::Entry& t);

// One step of a pass at wall time `now_ms` over the rows after `cursor`
// ("" starts a pass). REQUIRES: MayPurge (the caller checks, once per step).
Result<PurgeStepResult> PurgeStep(Replica& replica, const RootDir& root, uint64_t now_ms,
                                  const PurgeOptions& options, std::string_view cursor);

}  // namespace gossync::store
