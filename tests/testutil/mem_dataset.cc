#include "tests/testutil/mem_dataset.h"

#include <algorithm>

#include "agent/core/hlc.h"

namespace gossync::testutil {

using core::Entry;
using core::EntryKind;
using core::Hash256;

// ---- MemDataset ----

MemDataset::MemDataset(int depth) : depth_(depth), tree_(depth) {}

void MemDataset::Put(const Entry& e, std::string content) {
  GOSSYNC_CHECK(core::ValidateEntry(e).ok());
  const uint32_t bucket = tree_.BucketOf(e.path);
  auto it = entries_.find(e.path);
  if (it != entries_.end() && it->second.live() && it->second.kind == EntryKind::kFile) {
    auto h = live_files_by_hash_.find(it->second.hash);
    h->second.erase(e.path);
    if (h->second.empty()) live_files_by_hash_.erase(h);
  }
  const Hash256 digest = e.Digest();
  if (it != entries_.end()) {
    Hash256& old = digests_.find(e.path)->second;
    tree_.Replace(bucket, old, digest);
    old = digest;
    it->second = e;
  } else {
    tree_.Insert(bucket, digest);
    entries_.emplace(e.path, e);
    digests_.emplace(e.path, digest);
    buckets_[bucket].insert(e.path);
  }
  if (e.live() && e.kind == EntryKind::kFile) {
    GOSSYNC_CHECK(content.size() == e.size && core::Sha256(content) == e.hash);
    content_[e.path] = std::move(content);
    live_files_by_hash_[e.hash].insert(e.path);
  } else {
    content_.erase(e.path);
  }
}

bool MemDataset::Erase(std::string_view path) {
  auto it = entries_.find(path);
  if (it == entries_.end()) return false;
  const Entry& e = it->second;
  if (e.live() && e.kind == EntryKind::kFile) {
    auto h = live_files_by_hash_.find(e.hash);
    h->second.erase(it->first);
    if (h->second.empty()) live_files_by_hash_.erase(h);
  }
  const uint32_t bucket = tree_.BucketOf(path);
  auto d = digests_.find(path);
  GOSSYNC_CHECK(tree_.Remove(bucket, d->second));
  digests_.erase(d);
  auto b = buckets_.find(bucket);
  b->second.erase(it->first);
  if (b->second.empty()) buckets_.erase(b);
  content_.erase(it->first);
  entries_.erase(it);
  return true;
}

void MemDataset::CopyFrom(const MemDataset& other) {
  GOSSYNC_CHECK(other.depth_ == depth_);
  if (entries_.empty()) {  // the fast way: the maps as they are, the tree from the digests
    entries_ = other.entries_;
    content_ = other.content_;
    buckets_ = other.buckets_;
    live_files_by_hash_ = other.live_files_by_hash_;
    digests_ = other.digests_;
    for (const auto& [bucket, paths] : buckets_) {
      for (const std::string& p : paths) tree_.Insert(bucket, digests_.find(p)->second);
    }
    return;
  }
  for (const auto& [path, e] : other.entries_) {
    const std::string* c = other.Content(path);
    Put(e, c ? *c : std::string());
  }
}

const Entry* MemDataset::Find(std::string_view path) const {
  auto it = entries_.find(path);
  return it == entries_.end() ? nullptr : &it->second;
}

const std::string* MemDataset::Content(std::string_view path) const {
  auto it = content_.find(path);
  return it == content_.end() ? nullptr : &it->second;
}

const std::string* MemDataset::ContentByHash(const Hash256& hash) const {
  auto it = live_files_by_hash_.find(hash);
  if (it == live_files_by_hash_.end()) return nullptr;
  return Content(*it->second.begin());
}

std::array<Hash256, 16> MemDataset::ChildDigests(int level, uint32_t prefix) {
  return tree_.ChildDigests(level, prefix);
}

Result<std::vector<core::KeyDigest>> MemDataset::ListBucket(uint32_t bucket) {
  if (fail_reads) return *fail_reads;
  std::vector<core::KeyDigest> out;
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) return out;
  for (const std::string& path : it->second) {
    out.push_back({core::PathKey(path), core::Truncate(digests_.find(path)->second)});
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<Entry>> MemDataset::EntriesByKeys(uint32_t bucket,
                                                     std::span<const uint64_t> keys) {
  if (fail_reads) return *fail_reads;
  std::vector<Entry> out;
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) return out;
  for (const std::string& path : it->second) {
    if (std::binary_search(keys.begin(), keys.end(), core::PathKey(path))) {
      out.push_back(entries_.find(path)->second);
    }
  }
  return out;
}

Result<std::optional<Entry>> MemDataset::Get(std::string_view path) {
  if (fail_reads) return *fail_reads;
  const Entry* e = Find(path);
  return e ? std::optional<Entry>(*e) : std::nullopt;
}

Status MemDataset::ForEachUnder(int level, uint32_t prefix,
                                const std::function<void(const Entry&)>& fn) {
  if (fail_reads) return *fail_reads;
  GOSSYNC_CHECK(tree_.IsValidNode(level, prefix));
  const int shift = 4 * (depth_ - level);
  const uint64_t lo = uint64_t{prefix} << shift;
  const uint64_t hi = uint64_t{prefix + 1} << shift;
  for (auto it = buckets_.lower_bound(static_cast<uint32_t>(lo));
       it != buckets_.end() && it->first < hi; ++it) {
    for (const std::string& path : it->second) fn(entries_.find(path)->second);
  }
  return Status::Ok();
}

// ---- MemNode ----

MemNode::MemNode(std::string name, core::NodeId id, int depth, uint64_t clock_ms)
    : name_(std::move(name)), id_(id), clock_ms_(clock_ms), data_(depth) {}

Entry MemNode::Next(const std::string& path) {
  Entry e;
  if (const Entry* old = data_.Find(path)) e.vv = old->vv;
  ++counter_;
  ++clock_ms_;
  e.vv.Set(id_, counter_);
  e.dot = {id_, counter_};  // as Replica::ApplyLocal: this change made the content
  e.path = path;
  e.hlc = core::Hlc::Pack(clock_ms_, 0);
  e.origin = name_;
  e.mtime_ns = static_cast<int64_t>(clock_ms_) * 1'000'000;
  return e;
}

void MemNode::WriteFile(const std::string& path, const std::string& content, uint32_t mode) {
  Entry e = Next(path);
  e.kind = EntryKind::kFile;
  e.mode = mode;
  e.size = content.size();
  e.hash = core::Sha256(content);
  data_.Put(e, content);
}

void MemNode::Mkdir(const std::string& path, uint32_t mode) {
  Entry e = Next(path);
  e.kind = EntryKind::kDirectory;
  e.mode = mode;
  data_.Put(e);
}

void MemNode::Symlink(const std::string& path, const std::string& target) {
  Entry e = Next(path);
  e.kind = EntryKind::kSymlink;
  e.mode = 0777;
  e.target = target;
  e.size = target.size();
  e.hash = core::Sha256(target);
  data_.Put(e);
}

void MemNode::Remove(const std::string& path) {
  const Entry* old = data_.Find(path);
  GOSSYNC_CHECK(old != nullptr && old->live());
  const EntryKind kind = old->kind;
  Entry e = Next(path);
  e.kind = kind;
  e.deleted = true;
  e.dot = {};  // a tombstone has none
  data_.Put(e);
}

void MemNode::Chmod(const std::string& path, uint32_t mode) {
  const Entry* old = data_.Find(path);
  GOSSYNC_CHECK(old != nullptr && old->live());
  Entry e = *old;
  const std::string content = data_.Content(path) ? *data_.Content(path) : std::string();
  Entry n = Next(path);
  e.vv = n.vv;
  e.dot = n.dot;
  e.hlc = n.hlc;
  e.origin = n.origin;
  e.mode = mode;
  data_.Put(e, content);
}

void MemNode::CopyFrom(const MemNode& other) {
  data_.CopyFrom(other.data_);
  for (const auto& [path, e] : data_.entries()) counter_ = std::max(counter_, e.vv.Get(id_));
  clock_ms_ = std::max(clock_ms_, other.clock_ms_);
}

// ---- MemDriver ----

Status MemDriver::CheckExpected(std::string_view path, const std::optional<Entry>& expected) const {
  const Entry* now = data_->Find(path);
  const bool same = expected ? (now && now->Digest() == expected->Digest()) : now == nullptr;
  if (!same) return Status::Aborted(std::string(path) + " changed since the decision");
  return Status::Ok();
}

Result<std::string> MemDriver::ServedContent(const std::string& path, const std::string& alt,
                                             const Hash256& hash) const {
  for (const std::string* p : {&path, &alt}) {
    if (p->empty()) continue;
    const Entry* e = data_->Find(*p);
    if (e && e->live() && e->kind == EntryKind::kFile && e->hash == hash) {
      return *data_->Content(*p);
    }
  }
  return Status::NotFound("no live file " + path + " with that hash");
}

namespace {

std::string_view BlockOf(const std::string& data, uint64_t index, uint32_t block_size) {
  const uint64_t off = index * block_size;
  if (off >= data.size()) return {};
  return std::string_view(data).substr(off, block_size);
}

}  // namespace

bool MemDriver::Execute(const core::RepairAction& action) {
  namespace r = core::repair;
  if (const auto* a = std::get_if<r::PullFile>(&action)) {
    ++counters_.local_actions;
    ++counters_.pulls_opened;
    const Key key{a->entry.path, a->entry.hash};
    std::string& t = data_->temp_files[key];
    t.resize(a->entry.size, '\0');
    open_[a->op] = key;
    // What the temp file holds, then what can be copied from local files:
    // the old version at the path, or any file with the same content.
    const std::string* old = data_->Content(a->entry.path);
    const std::string* same = data_->ContentByHash(a->entry.hash);
    std::map<Hash256, uint64_t> old_blocks;  // block hash -> index in the old version
    if (old && !same) {
      for (uint64_t j = 0; j * a->block_size < old->size(); ++j) {
        old_blocks.emplace(core::Sha256(BlockOf(*old, j, a->block_size)), j);
      }
    }
    std::vector<bool> have(a->block_hashes.size());
    for (size_t i = 0; i < have.size(); ++i) {
      const uint64_t off = uint64_t{i} * a->block_size;
      if (core::Sha256(BlockOf(t, i, a->block_size)) == a->block_hashes[i]) {
        have[i] = true;
        ++counters_.blocks_reused;
        continue;
      }
      std::string_view from;
      if (same) {
        from = BlockOf(*same, i, a->block_size);
      } else if (auto j = old_blocks.find(a->block_hashes[i]); j != old_blocks.end()) {
        from = BlockOf(*old, j->second, a->block_size);
      }
      if (!from.empty() && core::Sha256(from) == a->block_hashes[i]) {
        t.replace(off, from.size(), from);
        have[i] = true;
        ++counters_.blocks_reused;
      }
    }
    const uint64_t op = a->op;
    completions_.push_back(
        [op, have](core::RepairSession& s, int64_t now) { return s.OnPullReady(now, op, have); });
    return true;
  }
  if (const auto* a = std::get_if<r::WriteBlock>(&action)) {
    ++counters_.local_actions;
    ++counters_.blocks_written;
    std::string& t = data_->temp_files.at(open_.at(a->op));
    GOSSYNC_CHECK(a->offset + a->data.size() <= t.size());
    std::copy(a->data.begin(), a->data.end(), t.begin() + static_cast<ptrdiff_t>(a->offset));
    return true;
  }
  if (const auto* a = std::get_if<r::CommitFile>(&action)) {
    ++counters_.local_actions;
    const Key key = open_.at(a->op);
    open_.erase(a->op);
    Status s;
    const std::string& data = data_->temp_files.at(key);
    if (core::Sha256(data) != a->entry.hash) {
      s = Status::Corruption("temp file of " + a->entry.path + " does not match its hash");
    } else {
      s = CheckExpected(a->entry.path, a->expected);
    }
    if (s.ok()) {
      data_->Put(a->entry, data);
      data_->temp_files.erase(key);
      ++counters_.commits;
    }
    const uint64_t op = a->op;
    completions_.push_back(
        [op, s](core::RepairSession& ss, int64_t now) { return ss.OnCommitted(now, op, s); });
    return true;
  }
  if (const auto* a = std::get_if<r::AbandonPull>(&action)) {
    ++counters_.local_actions;
    open_.erase(a->op);
    return true;
  }
  if (const auto* a = std::get_if<r::ApplyMeta>(&action)) {
    ++counters_.local_actions;
    Status s = CheckExpected(a->entry.path, a->expected);
    if (s.ok()) {
      std::string content;
      if (a->entry.live() && a->entry.kind == EntryKind::kFile) {
        // Only metadata changes: the content is the one we hold.
        const std::string* c = data_->Content(a->entry.path);
        GOSSYNC_CHECK(c != nullptr && core::Sha256(*c) == a->entry.hash);
        content = *c;
      }
      data_->Put(a->entry, std::move(content));
      ++counters_.applies;
    }
    const uint64_t op = a->op;
    completions_.push_back(
        [op, s](core::RepairSession& ss, int64_t now) { return ss.OnApplied(now, op, s); });
    return true;
  }
  if (const auto* a = std::get_if<r::MakeConflictCopy>(&action)) {
    ++counters_.local_actions;
    Status s = CheckExpected(a->from, a->expected);
    if (s.ok() && data_->Find(a->copy.path)) {
      s = Status::AlreadyExists(a->copy.path + " exists");
    }
    if (s.ok()) {
      data_->Put(a->copy, *data_->Content(a->from));
      ++counters_.copies;
    }
    const uint64_t op = a->op;
    completions_.push_back(
        [op, s](core::RepairSession& ss, int64_t now) { return ss.OnApplied(now, op, s); });
    return true;
  }
  if (const auto* a = std::get_if<r::PurgeTombstone>(&action)) {
    ++counters_.local_actions;
    Status s = CheckExpected(a->tombstone.path, a->tombstone);
    if (s.ok() && !a->tombstone.deleted) s = Status::InvalidArgument("not a tombstone");
    if (s.ok()) {
      data_->Erase(a->tombstone.path);
      ++counters_.purges;
    }
    const uint64_t op = a->op;
    completions_.push_back(
        [op, s](core::RepairSession& ss, int64_t now) { return ss.OnApplied(now, op, s); });
    return true;
  }
  if (const auto* a = std::get_if<r::ReadBlockList>(&action)) {
    ++counters_.reads;
    Result<core::BlockListInfo> out = Status::Internal("unset");
    auto content = ServedContent(a->path, a->alt_path, a->hash);
    if (content.ok()) {
      core::BlockListInfo info;
      info.size = content->size();
      info.block_size = a->block_size;
      for (uint64_t i = 0; i * a->block_size < content->size(); ++i) {
        info.hashes.push_back(core::Sha256(BlockOf(*content, i, a->block_size)));
      }
      out = std::move(info);
    } else {
      out = content.status();
    }
    const uint32_t req = a->req;
    completions_.push_back([req, out](core::RepairSession& s, int64_t now) {
      return s.OnBlockListRead(now, req, out);
    });
    return true;
  }
  if (const auto* a = std::get_if<r::ReadBlocks>(&action)) {
    ++counters_.reads;
    Result<std::vector<std::vector<uint8_t>>> out = Status::Internal("unset");
    auto content = ServedContent(a->path, a->alt_path, a->hash);
    if (content.ok()) {
      std::vector<std::vector<uint8_t>> blocks;
      for (uint32_t i : a->indexes) {
        std::string_view b = BlockOf(*content, i, a->block_size);
        blocks.emplace_back(b.begin(), b.end());
      }
      out = std::move(blocks);
    } else {
      out = content.status();
    }
    const uint32_t req = a->req;
    completions_.push_back(
        [req, out](core::RepairSession& s, int64_t now) { return s.OnBlocksRead(now, req, out); });
    return true;
  }
  return false;
}

}  // namespace gossync::testutil
