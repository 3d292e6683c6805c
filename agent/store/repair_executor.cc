// Dispatch, the driver loop, pulls and serving. What each action does to
// the disk and the index is in repair_apply.cc.
#include "agent/store/repair_executor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <map>
#include <utility>

#include "agent/core/path.h"
#include "agent/store/purge.h"
#include "agent/store/scanner.h"

namespace gossync::store {
namespace {

namespace r = core::repair;

uint64_t BlockCount(uint64_t size, uint32_t block_size) {
  return size / block_size + (size % block_size != 0 ? 1 : 0);
}

int64_t ToNs(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Reads exactly `len` bytes at `off`, or reports how many it got.
Result<size_t> ReadFull(int fd, uint8_t* buf, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, buf + got, len - got, static_cast<off_t>(off + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read", errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

// The change-detection fields of an open file against what the index holds.
bool SameAsIndexed(const struct stat& st, const LocalStat& indexed) {
  return S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == indexed.size &&
         static_cast<uint64_t>(st.st_ino) == indexed.ino && ToNs(st.st_mtim) == indexed.mtime_ns;
}

}  // namespace

uint32_t DiskMode(uint32_t entry_mode) { return entry_mode & core::kModeMask & ~06000u; }

RepairExecutor::RepairExecutor(RepairContext context) : ctx_(context) {
  GOSSYNC_CHECK(ctx_.replica && ctx_.root && ctx_.temp && ctx_.ignore && ctx_.open_temps);
}

RepairExecutor::~RepairExecutor() { EndSession(); }

void RepairExecutor::EndSession(bool finished) {
  while (!pulls_.empty()) ClosePull(pulls_.begin());
  std::vector<std::string> kept = std::move(kept_dirs_);
  std::vector<std::string> blocked = std::move(blocked_dirs_);
  kept_dirs_.clear();
  blocked_dirs_.clear();
  if (!finished) return;
  // What is still kept for live entries, now that every difference of the
  // session was exchanged. Errors leave it to the next session.
  auto live_below = [&](const std::string& dir) {
    bool live = false;
    (void)ctx_.replica->index().ForEachUnder(dir, [&](const IndexRecord& child) {
      if (!child.entry.live()) return Status::Ok();
      live = true;
      return Status::Aborted("enough");
    });
    return live;
  };
  auto on_disk = [&](const std::string& dir) {
    Result<std::optional<LocalStat>> cur = Current(dir);
    return cur.ok() && *cur && (*cur)->kind == core::EntryKind::kDirectory;
  };
  for (const std::string& dir : kept) {
    Result<std::optional<IndexRecord>> rec = ctx_.replica->Get(dir);
    if (!rec.ok() || !*rec || (*rec)->entry.live() || !on_disk(dir) || !live_below(dir)) continue;
    (void)Revive(**rec);
  }
  for (const std::string& dir : blocked) {
    Result<std::optional<IndexRecord>> rec = ctx_.replica->Get(dir);
    if (!rec.ok() || !*rec || !(*rec)->entry.live() ||
        (*rec)->entry.kind != core::EntryKind::kDirectory || !on_disk(dir) || !live_below(dir)) {
      continue;
    }
    if (ctx_.replica->Reassert(dir).ok()) ++stats_.dirs_reasserted;
  }
}

void RepairExecutor::ClosePull(std::map<uint64_t, OpenPull>::iterator it) {
  it->second.file.reset();  // closes; the bytes stay for the next session
  ctx_.open_temps->Release(it->second.temp_name);
  pulls_.erase(it);
}

Status RepairExecutor::Refused(Status s) {
  if (s.code() == Code::kAborted) ++stats_.preconditions_failed;
  return s;
}

// ---- Dispatch ----

std::optional<Completion> RepairExecutor::Execute(const core::RepairAction& action) {
  if (const auto* a = std::get_if<r::PullFile>(&action)) {
    return completion::PullReady{a->op, Pull(*a)};
  }
  if (const auto* a = std::get_if<r::WriteBlock>(&action)) {
    Write(*a);
    return std::nullopt;
  }
  if (const auto* a = std::get_if<r::CommitFile>(&action)) {
    return completion::Committed{a->op, Commit(*a)};
  }
  if (const auto* a = std::get_if<r::AbandonPull>(&action)) {
    if (auto it = pulls_.find(a->op); it != pulls_.end()) ClosePull(it);
    return std::nullopt;
  }
  if (const auto* a = std::get_if<r::ApplyMeta>(&action)) {
    return completion::Applied{a->op, Apply(*a)};
  }
  if (const auto* a = std::get_if<r::MakeConflictCopy>(&action)) {
    return completion::Applied{a->op, Copy(*a)};
  }
  if (const auto* a = std::get_if<r::PurgeTombstone>(&action)) {
    return completion::Applied{a->op, Purge(*a)};
  }
  if (const auto* a = std::get_if<r::ReadBlockList>(&action)) {
    Result<core::BlockListInfo> list = ReadBlockList(*a);
    ++(list.ok() ? stats_.reads_served : stats_.read_errors);
    return completion::BlockListRead{a->req, std::move(list)};
  }
  if (const auto* a = std::get_if<r::ReadBlocks>(&action)) {
    Result<std::vector<std::vector<uint8_t>>> blocks = ReadBlocks(*a);
    if (blocks.ok()) {
      ++stats_.reads_served;
      for (const auto& b : *blocks) stats_.bytes_served += b.size();
    } else {
      ++stats_.read_errors;
    }
    return completion::BlocksRead{a->req, std::move(blocks)};
  }
  GOSSYNC_CHECK(false && "Execute: not a local action");
  return std::nullopt;
}

RepairExecutor::Actions RepairExecutor::Deliver(core::RepairSession& s, int64_t now, Completion c) {
  if (auto* x = std::get_if<completion::PullReady>(&c)) {
    return s.OnPullReady(now, x->op, std::move(x->have));
  }
  if (auto* x = std::get_if<completion::Committed>(&c)) return s.OnCommitted(now, x->op, x->status);
  if (auto* x = std::get_if<completion::Applied>(&c)) return s.OnApplied(now, x->op, x->status);
  if (auto* x = std::get_if<completion::BlockListRead>(&c)) {
    return s.OnBlockListRead(now, x->req, std::move(x->list));
  }
  auto& x = std::get<completion::BlocksRead>(c);
  return s.OnBlocksRead(now, x.req, std::move(x.blocks));
}

RepairExecutor::Actions RepairExecutor::Drive(core::RepairSession& session, Actions actions,
                                              int64_t now_ms, bool defer_commits) {
  Actions out;
  bool ended = false;
  // Completions wait in one FIFO: an action emitted later never runs before
  // one emitted earlier, as the driver contract orders local work (a
  // deferred CommitFile runs before any later action that could depend on
  // it: only pulls, block writes and reads may pass it).
  std::deque<Completion> pending;
  auto run = [&](Actions batch) {
    for (core::RepairAction& a : batch) {
      if (std::holds_alternative<r::Send>(a)) {
        out.push_back(std::move(a));
      } else if (std::holds_alternative<r::Abort>(a) || std::holds_alternative<r::Finished>(a)) {
        out.push_back(std::move(a));
        ended = true;
      } else if (!ended) {
        if (auto* c = std::get_if<r::CommitFile>(&a)) {
          deferred_.push_back(std::move(*c));
          continue;
        }
        if (!deferred_.empty() && !std::holds_alternative<r::PullFile>(a) &&
            !std::holds_alternative<r::WriteBlock>(a) &&
            !std::holds_alternative<r::ReadBlockList>(a) &&
            !std::holds_alternative<r::ReadBlocks>(a)) {
          CommitBatch(pending);
        }
        if (std::optional<Completion> c = Execute(a)) pending.push_back(std::move(*c));
      }
    }
  };
  run(std::move(actions));
  for (;;) {
    while (!pending.empty() && !ended) {
      Completion c = std::move(pending.front());
      pending.pop_front();
      run(Deliver(session, now_ms, std::move(c)));
    }
    if (deferred_.empty() || (defer_commits && !ended)) break;
    CommitBatch(pending);  // after an end, done but not reported
  }
  if (ended || session.done()) {
    bool finished = false;
    for (const core::RepairAction& a : out) finished |= std::holds_alternative<r::Finished>(a);
    EndSession(finished);
  }
  return out;
}

// ---- Purging ----

Status RepairExecutor::Purge(const r::PurgeTombstone& a) {
  const core::Entry& t = a.tombstone;
  const core::Hash256 digest = t.Digest();
  Result<std::optional<IndexRecord>> rec = ctx_.replica->Get(t.path);
  if (!rec.ok()) return rec.status();
  if (!*rec || (*rec)->entry.live() || (*rec)->digest != digest) {
    return Refused(Status::Aborted(t.path + " changed in the index since the decision"));
  }
  Result<bool> blocked = PurgeBlocked(*ctx_.root, t);
  if (!blocked.ok()) return blocked.status();
  if (*blocked) return Status::Aborted(t.path + ": the directory is still on disk");
  Result<size_t> n = ctx_.replica->PurgeTombstones({{t.path, digest}});
  if (!n.ok()) return n.status();
  if (*n == 0) return Refused(Status::Aborted(t.path + " changed in the index"));
  ++stats_.tombstones_purged;
  return Status::Ok();
}

void RepairExecutor::CommitBatch(std::deque<Completion>& pending) {
  struct Item {
    r::CommitFile a;
    std::map<uint64_t, OpenPull>::iterator it;
    Status s;
    bool mismatch = false;
    PublishedFile pub;
  };
  std::vector<Item> items;
  items.reserve(deferred_.size());
  for (r::CommitFile& a : deferred_) {
    auto it = pulls_.find(a.op);
    Item x{std::move(a), it, Status::Ok(), false, {}};
    if (x.it == pulls_.end()) {
      x.s = Status::Internal("CommitFile of " + x.a.entry.path + " without an open pull");
    } else {
      x.s = x.it->second.write_error;
    }
    items.push_back(std::move(x));
  }
  deferred_.clear();
  const auto file = [](Item& x) -> PendingFile& { return *x.it->second.file; };
  for (Item& x : items) {
    if (!x.s.ok()) continue;
    x.s = file(x).Prepare(x.a.entry.path, DiskMode(x.a.entry.mode), x.a.entry.mtime_ns);
    x.mismatch = x.s.code() == Code::kCorruption;
  }
  // Many files: one syncfs (one journal commit, one cache flush) instead of
  // an fsync each (each ends in a cache flush of its own).
  const size_t prepared = static_cast<size_t>(
      std::count_if(items.begin(), items.end(), [](const Item& x) { return x.s.ok(); }));
  Status fs_synced = prepared > 1 ? SyncFileSystem(*ctx_.temp) : Status::Aborted("");
  for (Item& x : items) {
    if (x.s.ok()) x.s = file(x).SyncData(x.a.entry.path, fs_synced.ok());
  }
  for (Item& x : items) {
    if (x.s.ok()) x.s = PublishPulled(x.a.entry, x.a.expected, file(x), &x.pub);
  }
  // One fsync per directory (every rename into it is in the journal by
  // then), or one syncfs for them all when there are several.
  std::map<std::string, Status> dirs;
  for (Item& x : items) {
    if (x.s.ok()) dirs.emplace(std::string(core::ParentPath(x.a.entry.path)), Status::Ok());
  }
  Status all = dirs.size() > 1 ? SyncFileSystem(*ctx_.temp) : Status::Aborted("");
  for (Item& x : items) {
    if (!x.s.ok() || all.ok()) continue;
    Status& d = dirs[std::string(core::ParentPath(x.a.entry.path))];
    if (d.ok() && ::fsync(x.pub.parent.get()) != 0) {
      d = Status::FromErrno("fsync directory of " + x.a.entry.path, errno);
    }
  }
  // One index transaction for the batch (ApplyRemote), not one per file:
  // a transaction per file was most of an initial sync's writes and locks.
  std::vector<RemoteChange> changes;
  std::vector<Item*> indexed;
  for (Item& x : items) {
    if (x.s.ok()) x.s = dirs[std::string(core::ParentPath(x.a.entry.path))];
    if (!x.s.ok()) continue;
    RemoteChange c;
    c.entry = x.a.entry;
    if (x.pub.rec) c.expected = x.pub.rec->digest;
    c.stat = std::move(x.pub.stat);
    changes.push_back(std::move(c));
    indexed.push_back(&x);
  }
  if (!changes.empty()) {
    Result<RemoteChanges> r = ctx_.replica->ApplyRemote(std::move(changes));
    for (size_t k = 0; k < indexed.size(); ++k) {
      Item& x = *indexed[k];
      if (!r.ok()) {
        x.s = r.status();
        continue;
      }
      if (r->status[k].ok()) applied_.push_back(x.a.entry.path);
      x.s = Refused(r->status[k]);
    }
  }
  for (Item& x : items) {
    if (x.mismatch) {
      (void)file(x).Discard();  // as in Commit: do not resume from lying bytes
    } else if (x.s.code() == Code::kCorruption) {
      x.s = Status::IoError("local: " + x.s.message());
    }
    if (x.it != pulls_.end()) ClosePull(x.it);
    if (x.s.ok()) ++stats_.files_committed;
    pending.push_back(completion::Committed{x.a.op, std::move(x.s)});
  }
}

// ---- Pulling ----

Result<std::vector<bool>> RepairExecutor::Pull(const r::PullFile& a) {
  const core::Entry& e = a.entry;
  if (ctx_.ignore->Ignored(e.path, false)) {
    ++stats_.ignored;
    return Status::PermissionDenied(e.path + " is ignored here");
  }
  if (!e.live() || e.kind != core::EntryKind::kFile) {
    return Status::InvalidArgument("PullFile of " + e.path + ", which is not a live file");
  }
  if (a.block_size == 0 || a.block_size > kMaxBlockSize ||
      a.block_hashes.size() != BlockCount(e.size, a.block_size)) {
    return Status::InvalidArgument("PullFile of " + e.path + ": " +
                                   std::to_string(a.block_hashes.size()) + " block hashes for " +
                                   std::to_string(e.size) + " bytes");
  }
  if (auto it = pulls_.find(a.op); it != pulls_.end()) ClosePull(it);  // reopened
  std::string name = PendingFile::TempName(e.path, e.hash);
  if (!ctx_.open_temps->Acquire(name)) {
    return Status::Unavailable(e.path + " is being fetched by another session");
  }
  Result<PendingFile> file = PendingFile::Open(*ctx_.temp, e.path, e.hash, e.size);
  if (!file.ok()) {
    ctx_.open_temps->Release(name);
    return file.status();
  }
  OpenPull& p = pulls_[a.op];
  p.path = e.path;
  p.temp_name = std::move(name);
  p.file.emplace(std::move(file).value());
  ++stats_.pulls_opened;

  // What a cut transfer left in the temp file is re-hashed, never trusted.
  Result<std::vector<bool>> have = p.file->ValidBlocks(a.block_hashes, a.block_size);
  if (!have.ok()) {
    ClosePull(pulls_.find(a.op));
    return have.status();
  }
  stats_.blocks_in_temp += static_cast<uint64_t>(std::count(have->begin(), have->end(), true));

  // Then the blocks that did not change since the old local version. A block
  // is read into memory, hashed, and written from that same buffer, so what
  // lands in the temp file is exactly what matched, whatever happens to the
  // old file meanwhile.
  std::map<core::Hash256, std::vector<uint32_t>> want;
  for (uint32_t i = 0; i < have->size(); ++i) {
    if (!(*have)[i]) want[a.block_hashes[i]].push_back(i);
  }
  if (want.empty()) return have;
  Result<UniqueFd> old = ctx_.root->OpenRead(e.path);
  if (!old.ok()) return have;  // absent, or not a regular file: nothing to reuse
  struct stat st;
  if (::fstat(old->get(), &st) != 0) return have;
  const uint64_t old_size = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> buf(a.block_size);
  for (uint64_t off = 0; off < old_size && !want.empty(); off += a.block_size) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(a.block_size, old_size - off));
    Result<size_t> got = ReadFull(old->get(), buf.data(), len, off);
    if (!got.ok() || *got != len) break;  // shrank or unreadable: keep what we have
    auto it = want.find(core::Sha256(std::span<const uint8_t>(buf.data(), len)));
    if (it == want.end()) continue;
    for (uint32_t i : it->second) {
      const uint64_t at = uint64_t{i} * a.block_size;
      if (std::min<uint64_t>(a.block_size, e.size - at) != len) continue;
      Status w = p.file->WriteAt(at, std::span<const uint8_t>(buf.data(), len));
      if (!w.ok()) {
        ClosePull(pulls_.find(a.op));
        return w;
      }
      (*have)[i] = true;
      ++stats_.blocks_from_old;
    }
    want.erase(it);
  }
  return have;
}

void RepairExecutor::Write(const r::WriteBlock& a) {
  auto it = pulls_.find(a.op);
  if (it == pulls_.end() || !it->second.write_error.ok()) return;
  Status s = it->second.file->WriteAt(a.offset, a.data);
  if (!s.ok()) {
    // Reported by the CommitFile; never as Corruption, which would blame
    // the peer's content.
    it->second.write_error = Status::IoError("writing block " + std::to_string(a.index) + " of " +
                                             a.path + ": " + s.message());
    return;
  }
  ++stats_.blocks_written;
}

Status RepairExecutor::Commit(const r::CommitFile& a) {
  auto it = pulls_.find(a.op);
  if (it == pulls_.end()) {
    return Status::Internal("CommitFile of " + a.entry.path + " without an open pull");
  }
  Status s = it->second.write_error;
  bool content_mismatch = false;
  if (s.ok()) s = CommitPulled(a.entry, a.expected, *it->second.file, &content_mismatch);
  if (content_mismatch) {
    // Bytes that verified block by block but not as a whole: the peer's block
    // list lied (the session aborts as "bad_content"). Do not resume from them.
    (void)it->second.file->Discard();
  } else if (s.code() == Code::kCorruption) {
    s = Status::IoError("local: " + s.message());  // e.g. a damaged index: not the peer's doing
  }
  ClosePull(it);
  if (s.ok()) ++stats_.files_committed;
  return s;
}

// ---- Serving ----

namespace {

struct Served {
  std::string path;
  LocalStat stat;
};

// Only a path the index holds as a live file with `hash`, with its stat.
Result<Served> FindServed(const RepairContext& ctx, const std::string& path, const std::string& alt,
                          const core::Hash256& hash) {
  for (const std::string* p : {&path, &alt}) {
    if (p->empty() || !core::ValidatePath(*p).ok() || ctx.ignore->Ignored(*p, false)) continue;
    Result<std::optional<IndexRecord>> rec = ctx.replica->Get(*p);
    if (!rec.ok()) return rec.status();
    const std::optional<IndexRecord>& x = *rec;
    if (x && x->entry.live() && x->entry.kind == core::EntryKind::kFile && x->entry.hash == hash &&
        x->stat) {
      return Served{*p, *x->stat};
    }
  }
  return Status::NotFound("no live file " + path + " with that content hash here");
}

}  // namespace

Result<core::BlockListInfo> RepairExecutor::ReadBlockList(const r::ReadBlockList& a) {
  if (a.block_size == 0 || a.block_size > kMaxBlockSize) {
    return Status::InvalidArgument("block size " + std::to_string(a.block_size) + " out of range");
  }
  Result<Served> s = FindServed(ctx_, a.path, a.alt_path, a.hash);
  if (!s.ok()) return s.status();
  // HashFileBlocks opens beneath the root without following any symlink and
  // refuses a file whose (size, inode, mtime) moved since it was indexed.
  Result<FileHashes> h = HashFileBlocks(*ctx_.root, s->path, s->stat, a.block_size);
  if (!h.ok()) return h.status();
  if (h->file != a.hash) {
    return Status::Aborted(s->path + " changed on disk since it was indexed");
  }
  core::BlockListInfo info;
  info.size = s->stat.size;
  info.block_size = a.block_size;
  info.hashes = std::move(h->blocks);
  return info;
}

Result<std::vector<std::vector<uint8_t>>> RepairExecutor::ReadBlocks(const r::ReadBlocks& a) {
  if (a.block_size == 0 || a.block_size > kMaxBlockSize) {
    return Status::InvalidArgument("block size " + std::to_string(a.block_size) + " out of range");
  }
  Result<Served> s = FindServed(ctx_, a.path, a.alt_path, a.hash);
  if (!s.ok()) return s.status();
  Result<UniqueFd> fd = ctx_.root->OpenRead(s->path);
  if (!fd.ok()) return fd.status();
  struct stat before;
  if (::fstat(fd->get(), &before) != 0) return ErrnoStatus("stat", s->path, errno);
  if (!SameAsIndexed(before, s->stat)) {
    return Status::Aborted(s->path + " changed on disk since it was indexed");
  }
  const uint64_t size = s->stat.size;
  std::vector<std::vector<uint8_t>> blocks;
  blocks.reserve(a.indexes.size());
  for (uint32_t i : a.indexes) {
    const uint64_t off = uint64_t{i} * a.block_size;
    if (off >= size) {
      return Status::InvalidArgument("block " + std::to_string(i) + " is past the end of " +
                                     s->path);
    }
    std::vector<uint8_t> b(static_cast<size_t>(std::min<uint64_t>(a.block_size, size - off)));
    Result<size_t> got = ReadFull(fd->get(), b.data(), b.size(), off);
    if (!got.ok()) return got.status().Prefixed(s->path);
    if (*got != b.size()) return Status::Aborted(s->path + " shrank while being read");
    blocks.push_back(std::move(b));
  }
  struct stat after;
  if (::fstat(fd->get(), &after) != 0) return ErrnoStatus("stat", s->path, errno);
  if (!SameAsIndexed(after, s->stat) || ToNs(after.st_ctim) != ToNs(before.st_ctim)) {
    return Status::Aborted(s->path + " changed while being read");
  }
  // A one-block file's block hash is the content hash: check it here rather
  // than let the peer find a mismatch and blame us.
  if (size <= a.block_size && blocks.size() == 1 &&
      core::Sha256(std::span<const uint8_t>(blocks[0])) != a.hash) {
    return Status::Aborted(s->path + " changed on disk since it was indexed");
  }
  return blocks;
}

}  // namespace gossync::store
