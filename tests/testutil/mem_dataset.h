// In-memory stand-ins for the repair session's surroundings (tests only):
//  - MemDataset: entries and file contents by path, with a MerkleTree kept
//    in step; implements core::DatasetView.
//  - MemNode: a node's local changes (what the scanner records in the
//    daemon): each bumps the node's counter and clock.
//  - MemDriver: executes a session's local actions against a MemDataset the
//    way the daemon's driver does against the disk and the index (temp files
//    that survive a session, preconditions, reads for the peer), queueing
//    the completions.
//
// Built into the tests that use it by including the .cc (tests/CMakeLists.txt
// compiles only *_test.cc files into a test binary): tests/unit/core/
// repair_session_test.cc and tests/unit/wire/repair_harness_test.cc.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/dataset_view.h"
#include "agent/core/hlc.h"
#include "agent/core/merkle_tree.h"
#include "agent/core/repair_session.h"

namespace gossync::testutil {

class MemDataset : public core::DatasetView {
 public:
  explicit MemDataset(int depth = core::kDefaultTreeDepth);
  MemDataset(MemDataset&&) = default;
  MemDataset& operator=(MemDataset&&) = default;

  // Sets the entry at e.path (replacing any) and, for a live file, its
  // content. REQUIRES: ValidateEntry(e); for a live file SHA-256(content)
  // == e.hash and content.size() == e.size.
  void Put(const core::Entry& e, std::string content = {});
  // Removes the entry at `path` (as a purge does); false if there is none.
  bool Erase(std::string_view path);
  // Copies everything of `other` (same depth) but its temp files.
  void CopyFrom(const MemDataset& other);

  const core::Entry* Find(std::string_view path) const;
  const std::string* Content(std::string_view path) const;
  const std::map<std::string, core::Entry, std::less<>>& entries() const { return entries_; }
  const std::map<std::string, std::string, std::less<>>& contents() const { return content_; }
  // Any live file with this content hash (for reuse), or nullptr.
  const std::string* ContentByHash(const core::Hash256& hash) const;

  // core::DatasetView
  int depth() const override { return depth_; }
  core::Hash256 Root() override { return tree_.Root(); }
  uint64_t EntryCount() override { return entries_.size(); }
  std::array<core::Hash256, 16> ChildDigests(int level, uint32_t prefix) override;
  Result<std::vector<core::KeyDigest>> ListBucket(uint32_t bucket) override;
  Result<std::vector<core::Entry>> EntriesByKeys(uint32_t bucket,
                                                 std::span<const uint64_t> keys) override;
  Result<std::optional<core::Entry>> Get(std::string_view path) override;
  Status ForEachUnder(int level, uint32_t prefix,
                      const std::function<void(const core::Entry&)>& fn) override;

  // Fault injection: every view read fails with this while set.
  std::optional<Status> fail_reads;
  // The node's temp area (state_dir/tmp): partial downloads by (path,
  // content hash). Outlives sessions, so a cut transfer can resume.
  std::map<std::pair<std::string, core::Hash256>, std::string> temp_files;

 private:
  int depth_;
  core::MerkleTree tree_;
  std::map<std::string, core::Entry, std::less<>> entries_;
  std::map<std::string, std::string, std::less<>> content_;
  std::map<uint32_t, std::set<std::string>> buckets_;
  std::map<core::Hash256, std::set<std::string>> live_files_by_hash_;
  std::map<std::string, core::Hash256, std::less<>> digests_;  // Entry::Digest, cached
};

// A node making local changes to its dataset.
class MemNode {
 public:
  MemNode(std::string name, core::NodeId id, int depth = core::kDefaultTreeDepth,
          uint64_t clock_ms = 1'700'000'000'000);

  const std::string& name() const { return name_; }
  core::NodeId id() const { return id_; }
  MemDataset& data() { return data_; }
  const MemDataset& data() const { return data_; }
  uint64_t hlc() const { return core::Hlc::Pack(clock_ms_, 0); }

  void WriteFile(const std::string& path, const std::string& content, uint32_t mode = 0644);
  void Mkdir(const std::string& path, uint32_t mode = 0755);
  void Symlink(const std::string& path, const std::string& target);
  void Remove(const std::string& path);                // a tombstone; REQUIRES: a live entry
  void Chmod(const std::string& path, uint32_t mode);  // REQUIRES: a live entry
  // Takes `other`'s dataset as its own (a common ancestor).
  void CopyFrom(const MemNode& other);
  // The last counter and wall clock (ms) this node used.
  uint64_t counter() const { return counter_; }
  uint64_t clock_ms() const { return clock_ms_; }
  // Time passes (a node away, a ttl running out): later changes are stamped later.
  void AdvanceClock(uint64_t ms) { clock_ms_ += ms; }

 private:
  // A new version of `path`: the old VV with this node's counter bumped.
  core::Entry Next(const std::string& path);

  std::string name_;
  core::NodeId id_;
  uint64_t counter_ = 0;
  uint64_t clock_ms_;
  MemDataset data_;
};

// Executes a session's local actions against a MemDataset.
class MemDriver {
 public:
  using Actions = core::RepairSession::Actions;
  using Completion = std::function<Actions(core::RepairSession&, int64_t now_ms)>;

  explicit MemDriver(MemDataset* data) : data_(data) {}

  // Runs one local action (PullFile, WriteBlock, CommitFile, AbandonPull,
  // ApplyMeta, MakeConflictCopy, PurgeTombstone, ReadBlockList, ReadBlocks) and queues its
  // completion, if it has one. Returns false for any other action.
  bool Execute(const core::RepairAction& a);
  // Completions not yet delivered, in order.
  std::deque<Completion>& completions() { return completions_; }
  // Forgets the open pulls of a dropped session; temp files stay.
  void DropSession() {
    open_.clear();
    completions_.clear();
  }

  struct Counters {
    uint64_t local_actions = 0;  // every action that touches the dataset or a temp file
    uint64_t pulls_opened = 0;
    uint64_t blocks_written = 0;
    uint64_t blocks_reused = 0;  // found in a temp file or another local file
    uint64_t commits = 0;
    uint64_t applies = 0;
    uint64_t copies = 0;
    uint64_t purges = 0;
    uint64_t reads = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  using Key = std::pair<std::string, core::Hash256>;
  // The local entry still is what the decision was made against.
  Status CheckExpected(std::string_view path, const std::optional<core::Entry>& expected) const;
  // The live file with `hash` at `path` (or `alt`), for serving the peer.
  Result<std::string> ServedContent(const std::string& path, const std::string& alt,
                                    const core::Hash256& hash) const;

  MemDataset* data_;
  std::map<uint64_t, Key> open_;  // op -> temp of a running pull
  std::deque<Completion> completions_;
  Counters counters_;
};

}  // namespace gossync::testutil
