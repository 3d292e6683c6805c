// Tombstone expiry and catch-up mode inside a repair session (catch_up.h,
// docs/tombstones.md). Members of RepairSession::Impl; see
// repair_session_impl.h.
//
// The rules, for an entry at a path that only one side holds:
//  * An expired tombstone (HLC older than the ttl) is never sent to a peer
//    that lacks the path: the peer purged it, or would ignore it. The side
//    that holds it purges it then, so both roots agree at once, unless that
//    side is catching up (its old tombstones may be the only record of a
//    delete that another returning node has not seen yet).
//  * The side that lacks the path ignores an expired tombstone (it would
//    re-insert what the purge removed).
//  * A catching-up node meeting a current peer takes as deleted its live
//    entries that the peer lacks, are older than the ttl and that it has not
//    changed since its last sync point: it removes them (a tombstone with the
//    entry's own VV, HLC and origin, applied like a peer's, then purged), and
//    does not send them. Everything it changed since is sent as usual.
// A current node needs no rule of its own against a catching-up peer: the
// peer never offers what it takes as deleted, and what it does offer (a
// version it changed since, or one younger than the ttl) is not a purged
// delete coming back. The HELLO flags matter for which peer counts: what a
// catching-up or new peer lacks is no evidence of a delete.
#include "agent/core/repair_session_impl.h"

namespace gossync::core {

bool RepairSession::Impl::DisposeUnsent(const Entry& e) {
  if (opt.tombstone_ttl_ms == 0) return false;
  if (!OlderThanTtl(e.hlc, opt.wall_ms, opt.tombstone_ttl_ms)) return false;
  if (e.deleted) {
    if (!dry_run && opt.sync_mode != SyncMode::kCatchUp && !busy.count(e.path)) PurgeLocal(e);
    return true;
  }
  if (opt.sync_mode != SyncMode::kCatchUp || !PeerIsCurrent(peer_hello->flags)) return false;
  if (e.vv.Get(opt.node_id) > opt.sync_counter) return false;  // changed here since: push it
  if (dry_run) {
    Record(stats.diff.pull, e.path, e, std::nullopt);  // shown as a deletion to take
    return true;
  }
  if (busy.count(e.path)) {
    ++stats.deferred;
    return true;
  }
  ++stats.taken_as_deleted;
  // The entry's own history, deleted: every node derives the same tombstone,
  // and a peer that still holds the live version sees equal VVs with
  // different digests, i.e. concurrent versions, where the live one wins. So
  // if the rule was wrong for some peer, the file comes back from it.
  Entry tomb;
  tomb.path = e.path;
  tomb.kind = e.kind;
  tomb.vv = e.vv;
  tomb.hlc = e.hlc;
  tomb.origin = e.origin;
  tomb.deleted = true;
  const uint64_t op = next_op++;
  busy.insert(e.path);
  LocalOp& o = ops[op];
  o.path = e.path;
  o.digest = tomb.Digest();
  o.purge_after.emplace(tomb);
  Emit(repair::ApplyMeta{op, std::move(tomb), e});
  return true;
}

bool RepairSession::Impl::IgnoreRemote(const Entry& remote) const {
  return remote.deleted && OlderThanTtl(remote.hlc, opt.wall_ms, opt.tombstone_ttl_ms);
}

void RepairSession::Impl::PurgeLocal(const Entry& tombstone) {
  const uint64_t op = next_op++;
  busy.insert(tombstone.path);
  LocalOp o{tombstone.path, std::nullopt, tombstone.Digest()};
  o.purge = true;
  ops[op] = std::move(o);
  Emit(repair::PurgeTombstone{op, tombstone});
}

}  // namespace gossync::core
