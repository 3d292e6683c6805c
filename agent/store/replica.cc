#include "agent/store/replica.h"

#include <algorithm>
#include <chrono>
#include <string_view>

#include "agent/core/path.h"

namespace gossync::store {
namespace {

// The entry a live observation describes, before versioning (vv, hlc and
// origin are filled by the caller).
core::Entry EntryFromObservation(const Observation& o) {
  const LocalStat& s = *o.stat;
  core::Entry e;
  e.path = o.path;
  e.kind = s.kind;
  e.mode = s.mode & core::kModeMask;
  switch (s.kind) {
    case core::EntryKind::kFile:
      e.size = s.size;
      e.mtime_ns = s.mtime_ns;
      e.hash = o.hash;
      break;
    case core::EntryKind::kSymlink:
      e.size = s.target.size();
      e.mtime_ns = s.mtime_ns;
      e.target = s.target;
      e.hash = core::Sha256(s.target);  // cheap, so not trusted from the caller
      break;
    case core::EntryKind::kDirectory:
      // A directory's mtime moves with its children: not part of its version.
      break;
  }
  return e;
}

// Same content and metadata: nothing to version.
bool SameVersion(const core::Entry& a, const core::Entry& b) {
  return a.kind == b.kind && a.mode == b.mode && a.size == b.size && a.mtime_ns == b.mtime_ns &&
         a.hash == b.hash && a.target == b.target;
}

// Whether the stored change-detection fields need rewriting. For a directory
// only its identity counts: rewriting a row every time a child changes the
// directory's mtime would be a write per event for nothing.
bool StatMoved(const std::optional<LocalStat>& stored, const LocalStat& seen) {
  if (!stored) return true;
  if (seen.kind == core::EntryKind::kDirectory) {
    return stored->ino != seen.ino || stored->dev != seen.dev || stored->mode != seen.mode;
  }
  return stored->size != seen.size || stored->mtime_ns != seen.mtime_ns ||
         stored->mode != seen.mode || stored->ino != seen.ino || stored->dev != seen.dev;
}

// Why an observation cannot be applied, or empty.
std::string RejectReason(const Observation& o) {
  Status s = core::ValidatePath(o.path);
  if (!s.ok()) return s.message();
  if (!o.stat) return {};
  const LocalStat& st = *o.stat;
  switch (st.kind) {
    case core::EntryKind::kFile:
      if (core::IsZero(o.hash)) return "file observation without its content hash";
      break;
    case core::EntryKind::kSymlink:
      if (st.target.empty() || st.target.size() > core::kMaxSymlinkTarget ||
          st.target.find('\0') != std::string::npos) {
        return "symlink target empty, too long or with a NUL";
      }
      break;
    case core::EntryKind::kDirectory:
      break;
    default:
      return "unknown entry kind";
  }
  return {};
}

}  // namespace

Replica::Replica(std::unique_ptr<Index> index, WallClock clock)
    : index_(std::move(index)),
      clock_(std::move(clock)),
      tree_(index_->meta().tree_depth),
      hlc_(index_->meta().hlc),
      // Start above every counter that may have been issued: after a power
      // loss `counter` can lag what peers already saw, the reservation not.
      counter_(std::max(index_->meta().counter, index_->meta().counter_reserved)),
      reserved_(counter_) {}

Result<std::unique_ptr<Replica>> Replica::Open(const std::string& state_dir, Options options) {
  if (!options.clock) return Status::InvalidArgument("Replica::Open: no clock");
  options.index.node_name = options.node_name;
  options.index.tree_depth = options.tree_depth;
  Result<std::unique_ptr<Index>> index = Index::Open(state_dir, options.index);
  if (!index.ok()) return index.status();
  std::unique_ptr<Replica> r(new Replica(std::move(*index), std::move(options.clock)));

  auto start = std::chrono::steady_clock::now();
  Status s = r->index_->ForEachDigest(
      [&](uint32_t bucket, const core::Hash256& digest, core::EntryKind kind, bool deleted) {
        r->tree_.Insert(bucket, digest);
        r->CountAdd(kind, deleted, 1);
      });
  if (!s.ok()) return s.Prefixed("loading the Merkle tree");
  r->tree_.Flush();
  r->load_ms_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count());
  return r;
}

Result<std::unique_ptr<Replica>> Replica::Open(const std::string& state_dir,
                                               const std::string& node_name, int tree_depth,
                                               WallClock clock) {
  Options o;
  o.node_name = node_name;
  o.tree_depth = tree_depth;
  o.clock = std::move(clock);
  return Open(state_dir, std::move(o));
}

void Replica::CountAdd(core::EntryKind kind, bool deleted, int64_t delta) {
  uint64_t* n;
  if (deleted) {
    n = &counts_.tombstones;
  } else if (kind == core::EntryKind::kFile) {
    n = &counts_.files;
  } else if (kind == core::EntryKind::kDirectory) {
    n = &counts_.directories;
  } else {
    n = &counts_.symlinks;
  }
  *n += static_cast<uint64_t>(delta);
}

Result<Changes> Replica::ApplyLocal(std::vector<Observation> observations) {
  Changes out;
  // Work in path order: the index lookups and writes then walk its B-tree
  // in order, which is several times faster than random order on a large
  // index. The last observation of a path wins (the watcher may report it
  // twice), hence the stable sort.
  std::vector<size_t> order;
  {
    std::vector<size_t> sorted(observations.size());
    for (size_t i = 0; i < sorted.size(); ++i) sorted[i] = i;
    std::stable_sort(sorted.begin(), sorted.end(), [&](size_t a, size_t b) {
      return observations[a].path < observations[b].path;
    });
    order.reserve(sorted.size());
    for (size_t k = 0; k < sorted.size(); ++k) {
      if (k + 1 < sorted.size() &&
          observations[sorted[k]].path == observations[sorted[k + 1]].path) {
        continue;  // superseded by a later observation of the same path
      }
      order.push_back(sorted[k]);
    }
  }

  struct Pending {
    uint32_t bucket;
    bool had_old;
    core::Hash256 old_digest;
    core::EntryKind old_kind;
    bool old_deleted;
  };
  std::vector<Pending> pending;
  uint64_t counter = counter_;
  const std::string& self = index_->meta().node_name;
  const core::NodeId self_id = index_->meta().node_id;

  // A new version of `e` (whose vv is the previous one's, if any).
  auto bump = [&](core::Entry& e) {
    e.vv.Set(self_id, ++counter);
    // A new content is this change's; a tombstone has no dot.
    e.dot = e.live() ? core::VvPair{self_id, counter} : core::VvPair{};
    e.hlc = hlc_.Now(clock_());
    e.origin = self;
  };

  // One write transaction around the reads too: each row is read and
  // rewritten while its page is still in SQLite's cache.
  if (order.empty()) {
    out.root = tree_.Root();
    return out;
  }
  // Counters are reserved in blocks by a durable (fsynced) commit, so that
  // no counter is ever issued twice, even when a power loss drops the last
  // ordinary (synchronous=NORMAL) commits: see kCounterBlock.
  const bool reserve = counter_ + order.size() > reserved_;
  Result<Index::Transaction> txn = index_->Begin(reserve);
  if (!txn.ok()) return txn.status();
  bool wrote = false;
  for (size_t i : order) {
    Observation& o = observations[i];
    if (std::string why = RejectReason(o); !why.empty()) {
      out.rejected.emplace_back(o.path, std::move(why));
      continue;
    }
    Result<std::optional<IndexRecord>> got = txn->Get(o.path);
    if (!got.ok()) return got.status();
    std::optional<IndexRecord>& old = *got;

    IndexRecord rec;
    if (o.stat) {
      rec.entry = EntryFromObservation(o);
      if (old && old->entry.live() && SameVersion(old->entry, rec.entry)) {
        if (StatMoved(old->stat, *o.stat)) {
          old->stat = *o.stat;
          GOSSYNC_RETURN_IF_ERROR(txn->Put(*old));
          wrote = true;
          ++out.stat_refreshed;
        }
        continue;
      }
      if (old) rec.entry.vv = old->entry.vv;
      rec.stat = std::move(o.stat);
    } else {
      if (!old || old->entry.deleted) continue;  // already gone
      rec.entry.path = std::move(o.path);
      rec.entry.kind = old->entry.kind;
      rec.entry.vv = old->entry.vv;
      rec.entry.deleted = true;  // mode, size, mtime, hash, target stay zero
    }
    bump(rec.entry);
    // Only entries every peer accepts go into the index.
    if (Status valid = core::ValidateEntry(rec.entry); !valid.ok()) {
      --counter;  // this bump is not used
      out.rejected.emplace_back(rec.entry.path, valid.message());
      continue;
    }
    rec.digest = rec.entry.Digest();
    rec.bucket = tree_.BucketOf(rec.entry.path);
    Pending p{rec.bucket, old.has_value(), old ? old->digest : core::Hash256{},
              old ? old->entry.kind : core::EntryKind::kFile, old ? old->entry.deleted : false};
    GOSSYNC_RETURN_IF_ERROR(txn->Put(rec));
    wrote = true;
    pending.push_back(p);
    out.changed.push_back(EntryChange{std::move(rec.entry), p.old_digest, rec.digest});
  }

  uint64_t reserved = reserved_;
  if (!out.changed.empty()) {
    txn->SetCounter(counter);
    txn->SetHlc(hlc_.last());
    if (counter > reserved_) {
      GOSSYNC_CHECK(reserve);
      reserved = counter + kCounterBlock;
      txn->SetCounterReserved(reserved);
    }
  }
  // With nothing written, the transaction just rolls back when it goes.
  if (wrote) GOSSYNC_RETURN_IF_ERROR(txn->Commit());

  // Committed: now, and only now, the in-memory state follows.
  counter_ = counter;
  reserved_ = reserved;
  for (size_t i = 0; i < pending.size(); ++i) {
    const Pending& p = pending[i];
    const EntryChange& c = out.changed[i];
    if (p.had_old) {
      tree_.Replace(p.bucket, p.old_digest, c.new_digest);
      CountAdd(p.old_kind, p.old_deleted, -1);
    } else {
      tree_.Insert(p.bucket, c.new_digest);
    }
    CountAdd(c.entry.kind, c.entry.deleted, 1);
  }
  out.root = tree_.Root();
  return out;
}

Result<RemoteChanges> Replica::ApplyRemote(std::vector<RemoteChange> changes) {
  RemoteChanges out;
  out.status.resize(changes.size());
  struct Pending {
    uint32_t bucket;
    bool had_old;
    core::Hash256 old_digest;
    core::EntryKind old_kind;
    bool old_deleted;
    core::Hash256 new_digest;
    core::EntryKind new_kind;
    bool new_deleted;
  };
  std::vector<Pending> pending;
  if (changes.empty()) {
    out.root = tree_.Root();
    return out;
  }
  Result<Index::Transaction> txn = index_->Begin();
  if (!txn.ok()) return txn.status();
  uint64_t remote_hlc = 0;
  for (size_t i = 0; i < changes.size(); ++i) {
    RemoteChange& c = changes[i];
    if (Status valid = core::ValidateEntry(c.entry); !valid.ok()) {
      out.status[i] = valid.Prefixed("remote entry");
      continue;
    }
    Result<std::optional<IndexRecord>> got = txn->Get(c.entry.path);
    if (!got.ok()) return got.status();
    const std::optional<IndexRecord>& old = *got;
    const bool holds = c.expected ? (old && old->digest == *c.expected) : !old.has_value();
    if (!holds) {
      out.status[i] = Status::Aborted(c.entry.path + " changed in the index since the decision");
      continue;
    }
    IndexRecord rec;
    rec.entry = std::move(c.entry);
    rec.digest = rec.entry.Digest();
    rec.bucket = tree_.BucketOf(rec.entry.path);
    rec.stat = rec.entry.deleted ? std::nullopt : std::move(c.stat);
    GOSSYNC_RETURN_IF_ERROR(txn->Put(rec));
    remote_hlc = std::max(remote_hlc, rec.entry.hlc);
    pending.push_back(Pending{rec.bucket, old.has_value(), old ? old->digest : core::Hash256{},
                              old ? old->entry.kind : core::EntryKind::kFile,
                              old ? old->entry.deleted : false, rec.digest, rec.entry.kind,
                              rec.entry.deleted});
  }
  if (pending.empty()) {
    out.root = tree_.Root();
    return out;  // nothing written: the transaction rolls back
  }
  // Causality across nodes: our next local change must be stamped after
  // every version we now hold. A runaway peer clock is not followed (Update
  // caps it), and the value is only persisted with the entries.
  core::Hlc hlc = hlc_;
  if (remote_hlc != 0) hlc.Update(remote_hlc, clock_());
  txn->SetHlc(hlc.last());
  GOSSYNC_RETURN_IF_ERROR(txn->Commit());

  hlc_ = hlc;
  for (const Pending& p : pending) {
    if (p.had_old) {
      tree_.Replace(p.bucket, p.old_digest, p.new_digest);
      CountAdd(p.old_kind, p.old_deleted, -1);
    } else {
      tree_.Insert(p.bucket, p.new_digest);
    }
    CountAdd(p.new_kind, p.new_deleted, 1);
  }
  out.applied = pending.size();
  out.root = tree_.Root();
  return out;
}

Result<EntryChange> Replica::Reassert(std::string_view path) {
  const bool reserve = counter_ + 1 > reserved_;
  Result<Index::Transaction> txn = index_->Begin(reserve);
  if (!txn.ok()) return txn.status();
  Result<std::optional<IndexRecord>> got = txn->Get(path);
  if (!got.ok()) return got.status();
  if (!*got || (*got)->entry.deleted) {
    return Status::NotFound("no live entry at " + std::string(path) + " to reassert");
  }
  IndexRecord rec = std::move(**got);
  const core::Hash256 old_digest = rec.digest;
  const uint64_t counter = counter_ + 1;
  core::Hlc hlc = hlc_;
  rec.entry.vv.Set(index_->meta().node_id, counter);
  // This node keeps the content now: a delete that saw only the older
  // version must not win over it (core::Resolve).
  rec.entry.dot = {index_->meta().node_id, counter};
  rec.entry.hlc = hlc.Now(clock_());
  rec.entry.origin = index_->meta().node_name;
  rec.digest = rec.entry.Digest();
  GOSSYNC_RETURN_IF_ERROR(txn->Put(rec));
  txn->SetCounter(counter);
  txn->SetHlc(hlc.last());
  uint64_t reserved = reserved_;
  if (counter > reserved_) {
    GOSSYNC_CHECK(reserve);
    reserved = counter + kCounterBlock;
    txn->SetCounterReserved(reserved);
  }
  GOSSYNC_RETURN_IF_ERROR(txn->Commit());
  counter_ = counter;
  reserved_ = reserved;
  hlc_ = hlc;
  tree_.Replace(rec.bucket, old_digest, rec.digest);
  return EntryChange{std::move(rec.entry), old_digest, rec.digest};
}

Result<size_t> Replica::PurgeTombstones(
    const std::vector<std::pair<std::string, core::Hash256>>& rows) {
  if (rows.empty()) return size_t{0};
  Result<Index::Transaction> txn = index_->Begin();
  if (!txn.ok()) return txn.status();
  std::vector<std::pair<uint32_t, core::Hash256>> gone;
  for (const auto& [path, digest] : rows) {
    Result<std::optional<IndexRecord>> got = txn->Get(path);
    if (!got.ok()) return got.status();
    if (!*got || (*got)->digest != digest || (*got)->entry.live()) continue;
    GOSSYNC_RETURN_IF_ERROR(txn->Delete(path));
    gone.emplace_back(tree_.BucketOf(path), digest);
  }
  if (gone.empty()) return size_t{0};  // the transaction rolls back
  GOSSYNC_RETURN_IF_ERROR(txn->Commit());
  for (const auto& [bucket, digest] : gone) {
    GOSSYNC_CHECK(tree_.Remove(bucket, digest));
    counts_.tombstones -= 1;
  }
  return gone.size();
}

Status Replica::RecordSync(const core::SyncPoint& p) {
  const core::SyncPoint now = sync_point();
  const core::SyncPoint next{std::max(now.wall_ms, p.wall_ms), std::max(now.counter, p.counter)};
  if (next == now) return Status::Ok();
  Result<Index::Transaction> txn = index_->Begin();
  if (!txn.ok()) return txn.status();
  txn->SetSyncPoint(next.wall_ms, next.counter);
  return txn->Commit();
}

Result<ScanDiff> Replica::FullScanDiff(const std::vector<Observation>& walked) {
  std::vector<size_t> order(walked.size());
  for (size_t i = 0; i < walked.size(); ++i) {
    if (!walked[i].stat) {
      return Status::InvalidArgument("FullScanDiff: \"" + walked[i].path + "\" has no stat");
    }
    order[i] = i;
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return walked[a].path < walked[b].path; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (walked[order[i]].path == walked[order[i - 1]].path) {
      return Status::InvalidArgument("FullScanDiff: \"" + walked[order[i]].path +
                                     "\" walked twice");
    }
  }

  // Merge the index (path order) with the sorted walk.
  ScanDiff diff;
  size_t j = 0;
  Status s = index_->ListStats([&](const StatRow& row) -> Status {
    while (j < order.size() && std::string_view(walked[order[j]].path) < row.path) {
      diff.to_hash.push_back(order[j++]);  // not in the index
    }
    if (j < order.size() && walked[order[j]].path == row.path) {
      const LocalStat& seen = *walked[order[j]].stat;
      bool same;
      if (row.deleted) {
        same = false;
      } else if (row.kind == core::EntryKind::kDirectory &&
                 seen.kind == core::EntryKind::kDirectory) {
        same = row.mode == (seen.mode & core::kModeMask);
      } else {
        same = row.stat && row.stat->SameFile(seen);
      }
      (same ? diff.unchanged : diff.to_hash).push_back(order[j++]);
    } else if (!row.deleted) {
      diff.missing.emplace_back(row.path);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  while (j < order.size()) diff.to_hash.push_back(order[j++]);
  return diff;
}

}  // namespace gossync::store
