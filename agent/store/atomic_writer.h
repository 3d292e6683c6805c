// The apply step of DESIGN.md section 4: content from a peer is written to a
// temp file, fsynced, verified against its SHA-256, checked against what the
// caller decided on, and renamed into place beneath the root without
// following a symlink; then the parent directory is fsynced. A crash at any
// point leaves either the old or the new file at the destination, and a
// half-written temp file that can be resumed.
//
// Thread: everything here blocks on disk; run it on the work pool. A
// PendingFile is used by one thread at a time; TempArea is immutable after
// Open and may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/hash.h"
#include "agent/store/fs.h"
#include "agent/store/local_stat.h"
#include "gossync/status.h"

namespace gossync::store {

// Where temp files live: `state_dir/tmp` if it is on the same file system as
// data_dir (and a rename between the two works), else `data_dir/.gossync-tmp`
// (created 0700; the ignore rules hide it). Either way a rename from it into
// data_dir is atomic.
class TempArea {
 public:
  // REQUIRES: state_dir exists (or can be created) and is the operator's
  // trusted path; data_dir is `root`.
  static Result<TempArea> Open(const RootDir& root, const std::string& state_dir);

  TempArea(TempArea&&) = default;
  TempArea& operator=(TempArea&&) = default;

  int dir_fd() const { return dir_.get(); }
  const std::string& path() const { return path_; }  // for logs
  bool inside_data_dir() const { return inside_data_dir_; }

  // Removes temp entries (names ending in ".gossync-tmp") whose mtime is
  // older than `now_ns - max_age_ns`, then, of those `in_use` does not
  // claim, the oldest beyond `max_idle` (partial transfers of versions that
  // were superseded pile up under churn, and would wait for their age).
  // Returns how many were removed. Leaves anything else in the directory alone.
  Result<size_t> CollectGarbage(int64_t now_ns, int64_t max_age_ns,
                                size_t max_idle = SIZE_MAX,
                                const std::function<bool(const std::string&)>& in_use =
                                    nullptr) const;

 private:
  TempArea(UniqueFd dir, std::string path, bool inside)
      : dir_(std::move(dir)), path_(std::move(path)), inside_data_dir_(inside) {}

  UniqueFd dir_;  // O_RDONLY | O_DIRECTORY
  std::string path_;
  bool inside_data_dir_ = false;
};

// What the caller decided against: called with the destination's current
// lstat (nullopt if absent, target filled for a symlink) just before the
// rename. A non-OK status stops the apply and is returned as is, so the
// caller can take the conflict path. An empty function accepts anything.
using Precondition = std::function<Status(const std::optional<LocalStat>& current)>;

// A temp file for one (path, expected content hash). The name is derived
// from both, so a transfer cut by a crash or a dropped connection reopens
// the same file and resumes. Destroying a PendingFile closes it but keeps
// the bytes; Discard() removes them; Commit() moves them into place.
class PendingFile {
 public:
  // Opens or creates the temp file. `expected_size` bounds every write
  // (a peer cannot make us write more than the entry says).
  static Result<PendingFile> Open(const TempArea& area, std::string_view path,
                                  const core::Hash256& expected_hash, uint64_t expected_size);

  // hex(SHA-256(path NUL hash)) + ".gossync-tmp".
  static std::string TempName(std::string_view path, const core::Hash256& expected_hash);

  PendingFile(PendingFile&&) = default;
  PendingFile& operator=(PendingFile&&) = default;

  const std::string& temp_name() const { return name_; }
  uint64_t expected_size() const { return expected_size_; }
  // The temp file's current size in bytes.
  Result<uint64_t> CurrentSize() const;

  // Which of the expected blocks (block i covers [i*block_size, min(size,
  // (i+1)*block_size))) already hold the right bytes, by re-hashing them.
  Result<std::vector<bool>> ValidBlocks(std::span<const core::Hash256> expected_blocks,
                                        size_t block_size) const;
  struct Prefix {
    size_t blocks = 0;   // leading blocks that are valid
    uint64_t bytes = 0;  // the bytes they cover (resume from here)
  };
  // The longest run of valid blocks from the start: where a resumed
  // sequential transfer continues.
  Result<Prefix> ValidPrefix(std::span<const core::Hash256> expected_blocks,
                             size_t block_size) const;

  // Writes `bytes` at `offset`. LimitExceeded past expected_size().
  Status WriteAt(uint64_t offset, std::span<const uint8_t> bytes);
  // Copies [src_offset, src_offset + len) of an open regular file (e.g. the
  // old local version, for blocks that did not change) to `offset`.
  Status CopyFrom(int src_fd, uint64_t src_offset, uint64_t offset, uint64_t len);

  // Moves the file into place at `path` beneath `root`:
  //   truncate to expected_size, set `mode` (& 07777) and `mtime_ns`, fsync;
  //   verify SHA-256 == expected hash (Corruption and no rename otherwise);
  //   create missing parent directories (0755) beneath the root, refusing a
  //   symlink anywhere (PermissionDenied);
  //   `precondition` on the destination's current lstat;
  //   refuse (Aborted) to replace anything but a regular file: a symlink,
  //   directory or special file there must be removed by the caller first;
  //   renameat from the temp dir into the parent fd (RENAME_NOREPLACE if the
  //   destination was absent, so a file created meanwhile is AlreadyExists);
  //   fsync the parent directory.
  // Fewer bytes than expected_size is Unavailable (the transfer is not done).
  // On success the PendingFile is spent (any further call fails). On failure
  // the temp file is kept, even when the hash did not verify: ValidBlocks
  // then tells which blocks to fetch again (or the caller Discards it).
  Status Commit(const RootDir& root, std::string_view path, uint32_t mode, int64_t mtime_ns,
                const Precondition& precondition = {});

  // Commit in three steps, for committing a batch of files with fewer
  // journal commits (all Prepare, then all SyncData, then all Publish, then
  // one fsync per distinct parent directory):
  //   Prepare: truncate, verify, set mode and mtime, start writeback;
  //   SyncData: fsync the temp file (REQUIRES: Prepare succeeded), or only
  //     record that SyncFileSystem (below) ran after the Prepare;
  //   Publish: the precondition and the rename of Commit (REQUIRES: SyncData
  //     succeeded). With `parent_out`, the parent directory is NOT fsynced:
  //     its fd is handed to the caller, who must fsync it before anything
  //     (the index) records the file as applied.
  // Errors as for Commit; a failed step leaves the temp file in place.
  Status Prepare(std::string_view path, uint32_t mode, int64_t mtime_ns);
  Status SyncData(std::string_view path, bool synced_by_syncfs = false);
  Status Publish(const RootDir& root, std::string_view path, const Precondition& precondition,
                 UniqueFd* parent_out);

  // Removes the temp file.
  Status Discard();

 private:
  PendingFile(UniqueFd dir, UniqueFd file, std::string name, core::Hash256 expected_hash,
              uint64_t expected_size)
      : dir_(std::move(dir)),
        file_(std::move(file)),
        name_(std::move(name)),
        expected_hash_(expected_hash),
        expected_size_(expected_size) {}

  Status CheckOpen() const;

  UniqueFd dir_;   // a dup of the temp area's dir fd
  UniqueFd file_;  // O_RDWR
  std::string name_;
  core::Hash256 expected_hash_{};
  uint64_t expected_size_ = 0;
  bool prepared_ = false;
  bool synced_ = false;
};

// syncfs(2) on the file system of the temp area (and so of data_dir): every
// byte written there so far is durable after it, in one journal commit and
// one cache flush, where an fsync per file costs one flush each.
Status SyncFileSystem(const TempArea& area);

// Creates or replaces the symlink at `path` with text `target`, atomically
// (symlink in the temp area, then rename), with mtime `mtime_ns` (0: leave).
// Replaces only a symlink or nothing (a file or directory there: Aborted);
// checks `precondition` first; fsyncs the parent directory.
Status WriteSymlinkAtomically(const RootDir& root, const TempArea& area, std::string_view path,
                              std::string_view target, int64_t mtime_ns,
                              const Precondition& precondition = {});

// Creates the directory `path` (and missing parents) with `mode`, or sets
// `mode` on it if it exists. A non-directory there is AlreadyExists.
Status MakeDirectory(const RootDir& root, std::string_view path, uint32_t mode);

enum class RemoveOutcome : uint8_t {
  kRemoved,
  kAlreadyGone,  // nothing was there
  kNotEmpty,     // a directory that still has children: left in place
};

// Removes the file, symlink or (empty) directory at `path` beneath the root
// after `precondition` accepts its current lstat, and fsyncs the parent.
Result<RemoveOutcome> RemoveEntry(const RootDir& root, std::string_view path,
                                  const Precondition& precondition = {});

}  // namespace gossync::store
