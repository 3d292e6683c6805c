// What the scanner sees of one path on the local disk. Shared by the scanner
// (which produces it), the index (which stores the change-detection fields)
// and the replica (which turns it into entries).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/core/entry.h"
#include "agent/core/hash.h"

namespace gossync::store {

// lstat(2) of a path, never following a symlink.
struct LocalStat {
  core::EntryKind kind = core::EntryKind::kFile;
  uint32_t mode = 0;        // st_mode & core::kModeMask
  uint64_t size = 0;        // st_size
  int64_t mtime_ns = 0;     // st_mtim
  int64_t ctime_ns = 0;     // st_ctim (not used for change detection, kept for diagnostics)
  uint64_t ino = 0;
  uint64_t dev = 0;
  std::string target;       // readlink(2) for a symlink

  // The change-detection key of DESIGN.md section 5: a file whose
  // (size, mtime, inode, mode) is unchanged is not re-read.
  bool SameFile(const LocalStat& o) const {
    return kind == o.kind && size == o.size && mtime_ns == o.mtime_ns && ino == o.ino &&
           mode == o.mode && target == o.target;
  }
};

// One path as the scanner or the watcher found it.
struct Observation {
  std::string path;                 // canonical (core::ValidatePath)
  std::optional<LocalStat> stat;    // nullopt: the path no longer exists
  core::Hash256 hash{};             // content hash for a file (filled by hashing),
                                    // SHA-256(target) for a symlink, zero for a directory
};

}  // namespace gossync::store
