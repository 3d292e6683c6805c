#include "agent/store/purge.h"

#include <utility>
#include <vector>

#include "agent/core/catch_up.h"
#include "agent/store/scanner.h"

namespace gossync::store {

bool MayPurge(const Replica& replica, uint64_t now_ms, uint64_t ttl_ms) {
  return ttl_ms != 0 &&
         core::ModeAt(replica.sync_point(), now_ms, ttl_ms) != core::SyncMode::kCatchUp;
}

Result<bool> PurgeBlocked(const RootDir& root, const core::Entry& t) {
  if (t.kind != core::EntryKind::kDirectory) return false;
  Result<std::optional<LocalStat>> cur = LstatOne(root, t.path);
  if (!cur.ok()) return cur.status();
  return cur->has_value() && (*cur)->kind == core::EntryKind::kDirectory;
}

Result<PurgeStepResult> PurgeStep(Replica& replica, const RootDir& root, uint64_t now_ms,
                                  const PurgeOptions& options, std::string_view cursor) {
  PurgeStepResult out;
  std::vector<core::Entry> expired;
  std::string last;
  // Collected first: the index is not written while it streams.
  Status s =
      replica.index().ForEachAfter(cursor, options.rows_per_step, [&](const IndexRecord& rec) {
        ++out.scanned;
        last = rec.entry.path;
        if (rec.entry.deleted && core::OlderThanTtl(rec.entry.hlc, now_ms, options.ttl_ms)) {
          expired.push_back(rec.entry);
        }
        return Status::Ok();
      });
  if (!s.ok()) return s.Prefixed("tombstone purge");
  std::vector<std::pair<std::string, core::Hash256>> rows;
  for (const core::Entry& t : expired) {
    Result<bool> blocked = PurgeBlocked(root, t);
    // An unreadable parent: leave it to a later pass rather than guess.
    if (!blocked.ok() || *blocked) {
      ++out.kept;
      continue;
    }
    rows.emplace_back(t.path, t.Digest());
  }
  Result<size_t> purged = replica.PurgeTombstones(rows);
  if (!purged.ok()) return purged.status().Prefixed("tombstone purge");
  out.purged = *purged;
  if (out.scanned == options.rows_per_step) out.next = std::move(last);
  return out;
}

}  // namespace gossync::store
