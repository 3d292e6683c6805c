// The entry record (DESIGN.md sections 1 and 2): one path's current version.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/core/hash.h"
#include "agent/core/version_vector.h"
#include "gossync/status.h"

namespace gossync::core {

// Wire and index values; append only.
enum class EntryKind : uint8_t {
  kFile = 0,
  kDirectory = 1,
  kSymlink = 2,
};

const char* KindName(EntryKind kind);

// Node names: 1..63 bytes of [a-z0-9._-], starting with a letter or digit.
// They appear in certificates, file names (conflict copies) and logs.
bool IsValidNodeName(std::string_view name);

inline constexpr size_t kMaxSymlinkTarget = 4095;
inline constexpr uint32_t kModeMask = 07777;

struct Entry {
  std::string path;  // canonical (ValidatePath)
  EntryKind kind = EntryKind::kFile;
  uint32_t mode = 0;     // permission bits, & kModeMask
  uint64_t size = 0;     // bytes of content (file) or of the target (symlink)
  int64_t mtime_ns = 0;  // modification time; not meaningful for directories
  Hash256 hash{};        // SHA-256 of the content, of the target text for a
                         // symlink; zero for directories and tombstones
  std::string target;    // symlink target text, verbatim; empty otherwise
  VersionVector vv;
  uint64_t hlc = 0;      // HLC of the last change
  std::string origin;    // name of the node that made the last change
  bool deleted = false;  // a tombstone
  // The dot: the change that made this content, as (node, that node's
  // counter at the change). A local write sets it to (own id, new counter);
  // merges keep the winner's. It lets a delete that saw this content win
  // over it even after a merge made their VVs concurrent (core::Resolve).
  // {0, 0} when unknown (entries indexed before the index schema 2, parent
  // placeholders, revived directories) and always for a tombstone.
  VvPair dot{};

  bool operator==(const Entry&) const = default;

  bool live() const { return !deleted; }
  bool has_dot() const { return dot.counter != 0; }

  // SHA-256 over the canonical encoding (below). Two entries with equal
  // digests are the same version of the same path. Size, target, hlc and
  // origin are not in it: the hash covers content and target, the VV the
  // history. REQUIRES: path.size() <= 65535 (any valid path).
  Hash256 Digest() const;
};

// The canonical encoding hashed by Digest(), byte-exact and stable forever:
//   "gossync-entry-v1" 0x00
//   u16 path length, path bytes
//   u8 kind, u32 mode, i64 mtime_ns (0 for directories), 32 bytes hash,
//   u32 pair count, then per pair u64 node, u64 counter
//   u8 deleted
//   only for an entry with a dot: u64 dot node, u64 dot counter
// All integers big-endian. An entry without a dot encodes as it did before
// dots existed, so the digests of indexes migrated from schema 1 stay valid. For a tombstone, mode, mtime_ns and hash are
// encoded as zero, so two nodes that deleted the same version agree.
std::string CanonicalEncoding(const Entry& e);

// Checks what a peer could get wrong: path (ValidatePath), kind, mode within
// kModeMask, VersionVector::Valid, symlink target length and NUL-freedom,
// origin node name, tombstone/dir having a zero hash, target empty unless
// a symlink, hash == SHA-256(target) and a non-empty target for a live
// symlink (symlink(2) refuses an empty one). A tombstone has no target.
// A tombstone has no dot; a live entry's dot, if any, is covered by its own
// VV (vv.Get(dot.node) >= dot.counter).
Status ValidateEntry(const Entry& e);

}  // namespace gossync::core
