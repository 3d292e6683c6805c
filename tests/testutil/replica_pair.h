// Real replicas for repair tests (tests only):
//  - ReplicaNode: a data_dir and a state_dir in a fresh temp directory, a
//    real Replica (SQLite) over them, the RootDir, TempArea and ignore
//    matcher a daemon would have; file helpers and a full scan (Walk, hash,
//    ApplyLocal) as the local engine does it.
//  - SessionPair: two RepairSessions back to back through the real codec
//    and framing, in process, each driven by a RepairExecutor::Drive.
//  - Fingerprint: a data_dir as (path -> kind, mode, mtime, content) by lstat.
//
// Built into the tests that include replica_pair.cc (unit_store).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/repair_session.h"
#include "agent/store/atomic_writer.h"
#include "agent/store/fs.h"
#include "agent/store/ignore.h"
#include "agent/store/repair_executor.h"
#include "agent/store/replica.h"
#include "agent/store/replica_dataset.h"
#include "agent/wire/frame.h"

namespace gossync::testutil {

class ReplicaNode {
 public:
  // REQUIRES: `name` a valid node name; `ignore` valid patterns.
  explicit ReplicaNode(std::string name, std::vector<std::string> ignore = {},
                       int depth = core::kDefaultTreeDepth);
  ~ReplicaNode();
  ReplicaNode(const ReplicaNode&) = delete;
  ReplicaNode& operator=(const ReplicaNode&) = delete;

  const std::string& name() const { return name_; }
  const std::string& data_dir() const { return data_; }
  const std::string& state_dir() const { return state_; }
  std::string Abs(const std::string& rel) const { return data_ + "/" + rel; }
  store::Replica& replica() { return *replica_; }
  const store::RootDir& root() const { return *root_; }
  const store::TempArea& temp() const { return *temp_; }
  store::RepairContext context();

  // The replica's wall clock (ms); every read advances it by 1 s, so that
  // two conflicts of one path never fall in the same second (conflict copy
  // names have a resolution of one second).
  uint64_t clock_ms = 1'764'151'700'000;

  // Local changes (not indexed until Scan). Write replaces the file
  // atomically (a new inode), so a rewrite is always seen by the scanner.
  void Write(const std::string& rel, const std::string& content, mode_t mode = 0644);
  void Mkdir(const std::string& rel, mode_t mode = 0755);
  void Symlink(const std::string& target, const std::string& rel);
  void Chmod(const std::string& rel, mode_t mode);
  void Remove(const std::string& rel);  // a file, symlink or whole directory tree
  std::string Read(const std::string& rel) const;
  bool Exists(const std::string& rel) const;

  // A full scan into the index, as the local engine does it. REQUIRES ok.
  store::Changes Scan();
  // Closes and reopens the replica (a restart).
  void Reopen();
  // Temp files (".gossync-tmp") anywhere in data_dir or the temp area.
  std::vector<std::string> TempFilesInDataDir() const;
  std::vector<std::string> TempFilesInTempArea() const;

 private:
  std::string name_;
  std::string base_, data_, state_;
  std::unique_ptr<store::RootDir> root_;
  std::unique_ptr<store::TempArea> temp_;
  store::IgnoreMatcher ignore_;
  store::OpenTemps open_temps_;
  int depth_;
  std::unique_ptr<store::Replica> replica_;
};

// kind, mode, mtime and content (or target) of every path under data_dir.
std::map<std::string, std::string> Fingerprint(const std::string& data_dir);
// The lines where two fingerprints differ, for failure messages.
std::string FingerprintDiff(const std::map<std::string, std::string>& a,
                            const std::map<std::string, std::string>& b);

struct PairOptions {
  uint32_t block_size = 4096;
  bool dry_run = false;
  bool root_hint = true;  // the initiator knows the responder's root
  size_t max_in_flight_blocks = core::kMaxInFlightBlocks;
  // Last say on each side's options (tombstone ttl, catch-up mode, ...).
  std::function<void(core::RepairOptions&)> tune_a = nullptr;
  std::function<void(core::RepairOptions&)> tune_b = nullptr;
  // As the daemon does: the frames of one flight but the last are driven
  // with defer_commits, so their file commits form one batch.
  bool batch_commits = true;
};

class SessionPair {
 public:
  struct Side {
    Side(ReplicaNode* n, core::RepairOptions o);
    void Handle(core::RepairSession::Actions actions, bool defer_commits = false);
    void Receive(std::span<const uint8_t> bytes);
    void PeerClosed();
    bool ended() const { return finished || aborted; }

    ReplicaNode* node;
    store::ReplicaDataset view;
    std::unique_ptr<core::RepairSession> session;
    store::RepairExecutor exec;
    wire::FrameDecoder decoder;
    std::vector<uint8_t> outbox;
    std::optional<core::repair::Finished> finished;
    std::optional<core::repair::Abort> aborted;
    // Called with each decoded frame before the session sees it; true cuts
    // the connection there.
    std::function<bool(const core::RepairMessage&)> on_frame;
    bool cut = false;
    int64_t* now = nullptr;
    bool batch_commits = true;
  };

  // `a` initiates, `b` responds.
  SessionPair(ReplicaNode& a, ReplicaNode& b, PairOptions options = {});

  // Delivers flights both ways until both sessions ended, the connection was
  // cut, or nothing moves. Returns the number of flights.
  int Run(int max_flights = 100'000);

  Side& a() { return *a_; }
  Side& b() { return *b_; }
  bool stalled() const { return stalled_; }

 private:
  int64_t now_ = 1000;
  std::unique_ptr<Side> a_, b_;
  bool stalled_ = false;
};

}  // namespace gossync::testutil
