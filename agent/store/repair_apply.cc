// What RepairExecutor's local actions do to data_dir and the index: commits
// of pulled files, metadata, directories, symlinks, tombstones, conflict
// copies, and the parent directories they need. The rules are stated in
// repair_executor.h; the comments here say why.
#include <algorithm>
#include <utility>

#include "agent/core/path.h"
#include "agent/store/repair_executor.h"
#include "agent/store/scanner.h"

namespace gossync::store {
namespace {

namespace r = core::repair;
using core::EntryKind;

// Placeholder directories get this mode everywhere, so that two nodes that
// made the same placeholder hold identical entries.
constexpr uint32_t kPlaceholderMode = 0755;

const char* Word(EntryKind k) { return core::KindName(k); }

// Whether the disk still shows what the index recorded for `rec`: nothing
// where it has no row or a tombstone; the same file (size, mtime, inode,
// mode, symlink target) for a file or symlink; a directory with the same
// mode for a directory (its mtime moves with its children). Anything else
// is a local change the scanner has not recorded yet, and it wins.
bool DiskMatches(const std::optional<IndexRecord>& rec, const std::optional<LocalStat>& cur) {
  if (!rec || rec->entry.deleted) return !cur.has_value();
  if (!cur) return false;
  if (rec->entry.kind == EntryKind::kDirectory) {
    return cur->kind == EntryKind::kDirectory && (!rec->stat || rec->stat->mode == cur->mode);
  }
  return rec->stat && rec->stat->SameFile(*cur);
}

// The same check at the last moment, inside the writer (just before its
// rename or unlink).
Precondition StillMatches(const std::optional<IndexRecord>& rec) {
  return [rec](const std::optional<LocalStat>& now) {
    if (DiskMatches(rec, now)) return Status::Ok();
    return Status::Aborted((rec ? rec->entry.path : std::string("path")) +
                           " changed on disk since it was indexed");
  };
}

Status ExpectAbsent(const std::optional<LocalStat>& now) {
  if (!now) return Status::Ok();
  return Status::Aborted(std::string("a ") + Word(now->kind) +
                         " appeared there that the index does not know");
}

Status NotScanned(const std::string& path) {
  return Status::Aborted(path + " changed on disk and the scanner has not recorded it yet");
}

// The lstat of what we just wrote, if it is what we wrote: a local write in
// between must not be recorded as the peer's version (nullopt makes the
// scanner re-read the path).
std::optional<LocalStat> IfWritten(std::optional<LocalStat> fresh, const core::Entry& e) {
  if (!fresh || fresh->kind != e.kind) return std::nullopt;
  switch (e.kind) {
    case EntryKind::kFile:
      if (fresh->size != e.size || fresh->mtime_ns != e.mtime_ns) return std::nullopt;
      break;
    case EntryKind::kSymlink:
      if (fresh->target != e.target) return std::nullopt;
      break;
    case EntryKind::kDirectory:
      break;
  }
  return fresh;
}

// A directory this executor put in place of `expected` to hold a child:
// a placeholder for an absent path, or the revival of a tombstone. The
// session decided against `expected`, and `target` beats the stand-in too
// (a placeholder loses to everything; a revival to what dominates its
// tombstone), so the decision stands.
bool StandIn(const IndexRecord& now, const std::optional<core::Entry>& expected,
             const core::Entry& target) {
  const core::Entry& e = now.entry;
  if (!e.live() || e.kind != EntryKind::kDirectory) return false;
  if (!expected) return e.vv.empty();
  return expected->deleted && e.vv == expected->vv && e.hlc == expected->hlc &&
         e.origin == expected->origin && target.vv.Compare(expected->vv) == core::VvOrder::kGreater;
}

}  // namespace

// ---- Reading the local state ----

Result<std::optional<IndexRecord>> RepairExecutor::IndexHolds(
    const std::string& path, const std::optional<core::Entry>& expected,
    const core::Entry& target) {
  Result<std::optional<IndexRecord>> rec = ctx_.replica->Get(path);
  if (!rec.ok()) return rec.status();
  const bool holds = expected ? (*rec && (*rec)->digest == expected->Digest()) : !rec->has_value();
  if (!holds && !(*rec && StandIn(**rec, expected, target))) {
    return Refused(Status::Aborted(path + " changed in the index since the decision"));
  }
  return rec;
}

Result<std::optional<LocalStat>> RepairExecutor::Current(const std::string& path) {
  Result<struct stat> st = ctx_.root->Lstat(path);
  if (!st.ok()) {
    // NotFound: absent, or a parent is missing or not a directory.
    // PermissionDenied: a parent is a symlink (the resolver refuses it), so
    // the path is not in our tree either. Whatever would create something
    // there goes through EnsureParents, which refuses such a parent.
    const Code c = st.status().code();
    if (c == Code::kNotFound || c == Code::kPermissionDenied) return std::optional<LocalStat>();
    return st.status();
  }
  std::optional<LocalStat> ls = ToLocalStat(*st);
  if (!ls) return Refused(Status::Aborted(path + ": a special file is there"));
  if (ls->kind == EntryKind::kSymlink) {
    Result<std::string> t = ctx_.root->ReadLink(path);
    if (!t.ok()) {
      if (t.status().code() == Code::kNotFound) return std::optional<LocalStat>();
      return t.status();
    }
    ls->target = std::move(t).value();
  }
  return ls;
}

Status RepairExecutor::Index(core::Entry e, const std::optional<IndexRecord>& rec,
                             std::optional<LocalStat> stat) {
  std::vector<RemoteChange> one(1);
  one[0].entry = std::move(e);
  if (rec) one[0].expected = rec->digest;
  one[0].stat = std::move(stat);
  const std::string path = one[0].entry.path;
  Result<RemoteChanges> r = ctx_.replica->ApplyRemote(std::move(one));
  if (!r.ok()) return r.status();
  if (r->status[0].ok()) applied_.push_back(path);
  return Refused(r->status[0]);
}

// ---- Parents ----

Status RepairExecutor::EnsureParents(const std::string& path) {
  const std::string_view parent = core::ParentPath(path);
  if (parent.empty()) return Status::Ok();
  std::vector<RemoteChange> placeholders;
  // Top down, so each directory is made inside one that exists.
  std::vector<std::string> dirs;
  for (size_t slash = parent.find('/'); slash != std::string_view::npos;
       slash = parent.find('/', slash + 1)) {
    dirs.emplace_back(parent.substr(0, slash));
  }
  dirs.emplace_back(parent);
  for (const std::string& dir : dirs) {
    Result<std::optional<LocalStat>> cur = Current(dir);
    if (!cur.ok()) return cur.status();
    if (*cur && (*cur)->kind != EntryKind::kDirectory) {
      return Refused(Status::Aborted(path + ": " + dir + " is a " + Word((*cur)->kind) +
                                     " here, not a directory"));
    }
    Result<std::optional<IndexRecord>> rec = ctx_.replica->Get(dir);
    if (!rec.ok()) return rec.status();
    const bool known_live = *rec && (*rec)->entry.live();
    if (!*cur) {
      // A live file or symlink in the index but nothing on disk: deleted
      // locally and not yet scanned; a directory there would bury that.
      if (known_live && (*rec)->entry.kind != EntryKind::kDirectory)
        return Refused(NotScanned(dir));
      GOSSYNC_RETURN_IF_ERROR(MakeDirectory(*ctx_.root, dir, kPlaceholderMode));
    }
    if (known_live) continue;  // a live directory (recreated if a local rm was not scanned yet)
    if (*rec) {
      GOSSYNC_RETURN_IF_ERROR(Revive(**rec));  // a tombstone: see the header
      continue;
    }
    // Unknown to the index: only a directory we just made is ours to index;
    // one that was already there is a local change for the scanner.
    if (*cur) continue;
    Result<std::optional<LocalStat>> fresh = Current(dir);
    if (!fresh.ok()) return fresh.status();
    RemoteChange c;
    c.entry.path = dir;
    c.entry.kind = EntryKind::kDirectory;
    c.entry.mode = kPlaceholderMode;
    c.entry.origin = ctx_.replica->node_name();
    // Empty VV and HLC 0: dominated by every real version of the path.
    c.stat = *fresh;
    placeholders.push_back(std::move(c));
  }
  if (!placeholders.empty()) {
    std::vector<std::string> paths;
    for (const RemoteChange& c : placeholders) paths.push_back(c.entry.path);
    Result<RemoteChanges> r = ctx_.replica->ApplyRemote(std::move(placeholders));
    if (!r.ok()) return r.status();
    stats_.parents_created += r->applied;
    for (size_t i = 0; i < paths.size(); ++i) {
      if (r->status[i].ok()) applied_.push_back(std::move(paths[i]));
    }
  }
  return Status::Ok();
}

Status RepairExecutor::Revive(const IndexRecord& tomb) {
  const std::string& dir = tomb.entry.path;
  GOSSYNC_RETURN_IF_ERROR(MakeDirectory(*ctx_.root, dir, kPlaceholderMode));
  core::Entry e;
  e.path = dir;
  e.kind = EntryKind::kDirectory;
  e.mode = kPlaceholderMode;
  e.vv = tomb.entry.vv;
  e.hlc = tomb.entry.hlc;
  e.origin = tomb.entry.origin;
  Result<std::optional<LocalStat>> fresh = Current(dir);
  if (!fresh.ok()) return fresh.status();
  std::optional<LocalStat> st = IfWritten(*fresh, e);
  GOSSYNC_RETURN_IF_ERROR(Index(std::move(e), tomb, std::move(st)));
  ++stats_.parents_revived;
  return Status::Ok();
}

void RepairExecutor::RemoveEmptyTombstonedParents(const std::string& path) {
  for (std::string_view p = core::ParentPath(path); !p.empty(); p = core::ParentPath(p)) {
    const std::string dir(p);
    Result<std::optional<IndexRecord>> rec = ctx_.replica->Get(dir);
    if (!rec.ok() || !*rec || (*rec)->entry.live()) return;
    Result<RemoveOutcome> out =
        RemoveEntry(*ctx_.root, dir, [](const std::optional<LocalStat>& now) {
          if (now && now->kind != EntryKind::kDirectory) return Status::Aborted("not a directory");
          return Status::Ok();
        });
    if (!out.ok() || *out == RemoveOutcome::kNotEmpty) return;
  }
}

Status RepairExecutor::RemoveForKindChange(const std::string& path,
                                           const std::optional<IndexRecord>& rec,
                                           const std::optional<LocalStat>& cur) {
  if (!rec || !rec->entry.live() || !DiskMatches(rec, cur)) return Refused(NotScanned(path));
  Result<RemoveOutcome> out = RemoveEntry(*ctx_.root, path, StillMatches(rec));
  if (!out.ok()) return Refused(out.status());
  if (*out == RemoveOutcome::kNotEmpty) {
    // Its entries' tombstones come first (maybe later in this session); the
    // new kind waits for the next session (see EndSession).
    blocked_dirs_.push_back(path);
    return Refused(Status::Aborted(path + " is a directory with entries still in it"));
  }
  return Status::Ok();
}

// ---- Files ----

Status RepairExecutor::ReadyForFile(const core::Entry& e,
                                    const std::optional<core::Entry>& expected,
                                    std::optional<IndexRecord>* rec, Precondition* pre) {
  Result<std::optional<IndexRecord>> held = IndexHolds(e.path, expected, e);
  if (!held.ok()) return held.status();
  *rec = std::move(held).value();
  Result<std::optional<LocalStat>> cur = Current(e.path);
  if (!cur.ok()) return cur.status();
  if (*rec && (*rec)->entry.live() && (*rec)->entry.kind != EntryKind::kFile) {
    GOSSYNC_RETURN_IF_ERROR(RemoveForKindChange(e.path, *rec, *cur));
    *pre = ExpectAbsent;
  } else {
    if (!DiskMatches(*rec, *cur)) return Refused(NotScanned(e.path));
    *pre = StillMatches(*rec);
  }
  return EnsureParents(e.path);
}

Status RepairExecutor::CommitPulled(const core::Entry& e,
                                    const std::optional<core::Entry>& expected, PendingFile& file,
                                    bool* content_mismatch) {
  std::optional<IndexRecord> rec;
  Precondition pre;
  GOSSYNC_RETURN_IF_ERROR(ReadyForFile(e, expected, &rec, &pre));
  Status s = file.Commit(*ctx_.root, e.path, DiskMode(e.mode), e.mtime_ns, pre);
  *content_mismatch = s.code() == Code::kCorruption;
  if (s.code() == Code::kAlreadyExists) s = Status::Aborted(s.message());  // created meanwhile
  if (!s.ok()) return Refused(s);
  Result<std::optional<LocalStat>> fresh = Current(e.path);
  if (!fresh.ok()) return fresh.status();
  return Index(e, rec, IfWritten(*fresh, e));
}

Status RepairExecutor::PublishPulled(const core::Entry& e,
                                     const std::optional<core::Entry>& expected,
                                     PendingFile& file, PublishedFile* out) {
  // The checks of CommitPulled, then Publish (the file is prepared and
  // synced); the parent's fsync and the index are the caller's (CommitBatch).
  std::optional<IndexRecord> rec;
  Precondition pre;
  GOSSYNC_RETURN_IF_ERROR(ReadyForFile(e, expected, &rec, &pre));
  Status s = file.Publish(*ctx_.root, e.path, pre, &out->parent);
  if (s.code() == Code::kAlreadyExists) s = Status::Aborted(s.message());  // created meanwhile
  if (!s.ok()) return Refused(s);
  Result<std::optional<LocalStat>> fresh = Current(e.path);
  if (!fresh.ok()) return fresh.status();
  out->rec = std::move(rec);
  out->stat = IfWritten(*fresh, e);
  return Status::Ok();
}

Status RepairExecutor::ApplyFileMeta(const core::Entry& e, const std::optional<IndexRecord>& rec,
                                     const std::optional<LocalStat>& cur) {
  // The session sends ApplyMeta for a file only when we hold its content.
  if (!rec || !rec->entry.live() || rec->entry.kind != EntryKind::kFile ||
      rec->entry.hash != e.hash || rec->entry.size != e.size) {
    return Refused(Status::Aborted(e.path + ": the content this version needs is not here"));
  }
  if (!DiskMatches(rec, cur)) return Refused(NotScanned(e.path));
  // By path, without following a symlink (an fd would need read permission,
  // which a 0200 file does not give us).
  const uint32_t mode = DiskMode(e.mode);
  if (cur->mode != mode) GOSSYNC_RETURN_IF_ERROR(ctx_.root->Chmod(e.path, mode));
  if (cur->mtime_ns != e.mtime_ns) GOSSYNC_RETURN_IF_ERROR(ctx_.root->SetMtime(e.path, e.mtime_ns));
  Result<std::optional<LocalStat>> fresh = Current(e.path);
  if (!fresh.ok()) return fresh.status();
  std::optional<LocalStat> st = IfWritten(*fresh, e);
  if (st && st->ino != cur->ino) st.reset();  // replaced meanwhile: let the scanner look
  return Index(e, rec, std::move(st));
}

Status RepairExecutor::Copy(const r::MakeConflictCopy& a) {
  const core::Entry& c = a.copy;
  if (ctx_.ignore->Ignored(c.path, false)) {
    ++stats_.ignored;
    return Status::PermissionDenied(c.path + " is ignored here");
  }
  if (!c.live() || c.kind != EntryKind::kFile) {
    return Status::InvalidArgument("conflict copy " + c.path + " is not a live file");
  }
  Result<std::optional<IndexRecord>> rec = IndexHolds(a.from, a.expected, c);
  if (!rec.ok()) return rec.status();
  const std::optional<IndexRecord>& from = *rec;
  if (!from || !from->entry.live() || from->entry.kind != EntryKind::kFile ||
      from->entry.hash != c.hash || from->entry.size != c.size || !from->stat) {
    return Refused(Status::Aborted(a.from + " no longer holds the content of " + c.path));
  }
  Result<std::optional<IndexRecord>> existing = ctx_.replica->Get(c.path);
  if (!existing.ok()) return existing.status();
  Result<std::optional<LocalStat>> there = Current(c.path);
  if (!there.ok()) return there.status();
  if (*existing || *there) return Status::AlreadyExists(c.path + " exists");

  Result<UniqueFd> src = ctx_.root->OpenRead(a.from);
  if (!src.ok()) return Refused(src.status());
  struct stat st;
  if (::fstat(src->get(), &st) != 0) return ErrnoStatus("stat", a.from, errno);
  std::optional<LocalStat> now = ToLocalStat(st);
  if (!now || !from->stat->SameFile(*now)) return Refused(NotScanned(a.from));

  const std::string name = PendingFile::TempName(c.path, c.hash);
  if (!ctx_.open_temps->Acquire(name)) {
    return Status::Unavailable(c.path + " is being written by another session");
  }
  Status s;
  {
    Result<PendingFile> file = PendingFile::Open(*ctx_.temp, c.path, c.hash, c.size);
    s = file.status();
    if (s.ok()) s = file->CopyFrom(src->get(), 0, 0, c.size);
    if (s.ok()) s = EnsureParents(c.path);
    // Commit verifies the hash: a local write to `from` during the copy
    // shows up as Corruption here, which is ours, not the peer's.
    if (s.ok()) s = file->Commit(*ctx_.root, c.path, DiskMode(c.mode), c.mtime_ns, ExpectAbsent);
    if (s.code() == Code::kCorruption) {
      (void)file->Discard();
      s = Status::Aborted(a.from + " changed while it was copied");
    }
    if (s.code() == Code::kAlreadyExists) s = Status::Aborted(s.message());
  }
  ctx_.open_temps->Release(name);
  if (!s.ok()) return Refused(s);
  Result<std::optional<LocalStat>> fresh = Current(c.path);
  if (!fresh.ok()) return fresh.status();
  s = Index(c, std::nullopt, IfWritten(*fresh, c));
  if (s.ok()) ++stats_.copies_made;
  return s;
}

// ---- ApplyMeta ----

Status RepairExecutor::Apply(const r::ApplyMeta& a) {
  const core::Entry& e = a.entry;
  if (ctx_.ignore->Ignored(e.path, e.kind == EntryKind::kDirectory)) {
    ++stats_.ignored;
    return Status::PermissionDenied(e.path + " is ignored here");
  }
  Result<std::optional<IndexRecord>> rec = IndexHolds(e.path, a.expected, e);
  if (!rec.ok()) return rec.status();
  Result<std::optional<LocalStat>> cur = Current(e.path);
  if (!cur.ok()) return cur.status();
  Status s;
  if (e.deleted) {
    s = ApplyTombstone(e, *rec, *cur);
  } else if (e.kind == EntryKind::kFile) {
    s = ApplyFileMeta(e, *rec, *cur);
  } else if (e.kind == EntryKind::kDirectory) {
    s = ApplyDirectory(e, *rec, *cur);
  } else {
    s = ApplySymlink(e, *rec, *cur);
  }
  if (s.ok()) ++stats_.entries_applied;
  return s;
}

Status RepairExecutor::ApplyDirectory(const core::Entry& e, const std::optional<IndexRecord>& rec,
                                      const std::optional<LocalStat>& cur) {
  const bool rec_live = rec && rec->entry.live();
  if (cur && cur->kind == EntryKind::kDirectory) {
    // A directory the index has as live must still have its mode; one it
    // lacks or has as a tombstone (left in place, or made for a child) is
    // adopted: a directory holds no content to lose.
    if (rec_live && !DiskMatches(rec, cur)) return Refused(NotScanned(e.path));
  } else if (cur) {
    GOSSYNC_RETURN_IF_ERROR(RemoveForKindChange(e.path, rec, cur));  // file or symlink -> dir
  } else if (rec_live) {
    return Refused(NotScanned(e.path));  // deleted here, not yet scanned
  }
  GOSSYNC_RETURN_IF_ERROR(EnsureParents(e.path));
  GOSSYNC_RETURN_IF_ERROR(MakeDirectory(*ctx_.root, e.path, e.mode & core::kModeMask));
  Result<std::optional<LocalStat>> fresh = Current(e.path);
  if (!fresh.ok()) return fresh.status();
  return Index(e, rec, IfWritten(*fresh, e));
}

Status RepairExecutor::ApplySymlink(const core::Entry& e, const std::optional<IndexRecord>& rec,
                                    const std::optional<LocalStat>& cur) {
  Precondition pre;
  if (!cur) {
    if (rec && rec->entry.live()) return Refused(NotScanned(e.path));
    pre = ExpectAbsent;
  } else if (cur->kind == EntryKind::kSymlink) {
    if (!DiskMatches(rec, cur)) return Refused(NotScanned(e.path));
    pre = StillMatches(rec);
  } else {
    GOSSYNC_RETURN_IF_ERROR(RemoveForKindChange(e.path, rec, cur));  // file or dir -> symlink
    pre = ExpectAbsent;
  }
  GOSSYNC_RETURN_IF_ERROR(EnsureParents(e.path));
  Status s = WriteSymlinkAtomically(*ctx_.root, *ctx_.temp, e.path, e.target, e.mtime_ns, pre);
  if (s.code() == Code::kAlreadyExists) s = Status::Aborted(s.message());
  if (!s.ok()) return Refused(s);
  Result<std::optional<LocalStat>> fresh = Current(e.path);
  if (!fresh.ok()) return fresh.status();
  return Index(e, rec, IfWritten(*fresh, e));
}

Status RepairExecutor::ApplyTombstone(const core::Entry& e, const std::optional<IndexRecord>& rec,
                                      const std::optional<LocalStat>& cur) {
  if (cur && cur->kind != EntryKind::kDirectory) {
    // Never delete what the index does not hold as it is now.
    if (!DiskMatches(rec, cur)) return Refused(NotScanned(e.path));
    Result<RemoveOutcome> out = RemoveEntry(*ctx_.root, e.path, StillMatches(rec));
    if (!out.ok()) return Refused(out.status());
  } else if (cur) {
    if (!rec || !rec->entry.live() || !DiskMatches(rec, cur)) return Refused(NotScanned(e.path));
    // Everything beneath it, per the index: a live entry keeps it.
    bool live_below = false;
    std::vector<std::string> dead_dirs;
    Status s = ctx_.replica->index().ForEachUnder(e.path, [&](const IndexRecord& child) {
      if (child.entry.live()) {
        live_below = true;
        return Status::Aborted("live");  // enough
      }
      if (child.entry.kind == EntryKind::kDirectory) dead_dirs.push_back(child.entry.path);
      return Status::Ok();
    });
    if (!s.ok() && !live_below) return s;
    bool removed = false;
    if (!live_below) {
      auto only_dir = [](const std::optional<LocalStat>& now) {
        if (now && now->kind != EntryKind::kDirectory) return Status::Aborted("not a directory");
        return Status::Ok();
      };
      Result<RemoveOutcome> out = RemoveEntry(*ctx_.root, e.path, StillMatches(rec));
      if (!out.ok()) return Refused(out.status());
      if (*out == RemoveOutcome::kNotEmpty) {
        // Tombstoned directories left in place earlier, deepest first
        // (reverse path order puts children before their parents).
        for (auto it = dead_dirs.rbegin(); it != dead_dirs.rend(); ++it) {
          (void)RemoveEntry(*ctx_.root, *it, only_dir);
        }
        out = RemoveEntry(*ctx_.root, e.path, StillMatches(rec));
        if (!out.ok()) return Refused(out.status());
      }
      removed = *out != RemoveOutcome::kNotEmpty;
    }
    // Kept: the index records the deletion, the directory stays for what
    // is still in it (see the header).
    if (!removed) {
      ++stats_.dirs_kept;
      kept_dirs_.push_back(e.path);
    }
  }
  Status s = Index(e, rec, std::nullopt);
  if (s.ok()) RemoveEmptyTombstonedParents(e.path);
  return s;
}

}  // namespace gossync::store
