// Deciding between two versions of one path (DESIGN.md section 1). Every node
// reaches the same decision for the same pair, whichever side is local.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/core/entry.h"

namespace gossync::core {

enum class Decision {
  kSame,        // equal version vectors: nothing to do
  kKeepLocal,   // local dominates: the peer should take ours
  kTakeRemote,  // remote dominates: take theirs
  kMerge,       // concurrent, identical content and metadata (or both
                // tombstones): keep the content, adopt `winner` (merged VV)
  kConflict,    // concurrent and different: `winner` becomes the live
                // version, `copy` (the loser's content) a new entry
};

struct Resolution {
  Decision decision = Decision::kSame;
  // For kMerge and kConflict: the entry every node ends up with at this path,
  // winner's content with the pointwise-max VV. For kTakeRemote: remote.
  std::optional<Entry> winner;
  // For kConflict only, and only when the loser has content to keep (a live
  // file or symlink): the loser at ConflictCopyPath(...), with the loser's
  // VV, HLC and origin, so every node makes the identical copy.
  std::optional<Entry> copy;
};

// The conflict rule:
// - VV order decides when the VVs are ordered.
// - Concurrent: identical (kind, mode, hash, target, deleted) -> kMerge;
//   a live version beats a tombstone (a write is never lost to a delete);
//   a directory beats a file or symlink (its children stay put; the other
//   becomes the copy); otherwise the greater (hlc, origin) wins.
// REQUIRES: local.path == remote.path.
Resolution Resolve(const Entry& local, const Entry& remote);

// NAME.sync-conflict-YYYYMMDD-HHMMSS-NODE.EXT in the same directory, with the
// UTC time of `hlc` and the extension (the part of the base name after its
// last '.', unless that dot is the first character). The NAME part is
// shortened, at a UTF-8 boundary, so the component fits in 255 bytes.
std::string ConflictCopyPath(std::string_view path, uint64_t hlc, std::string_view node);

// True for names that ConflictCopyPath produces.
bool IsConflictCopy(std::string_view path);

}  // namespace gossync::core
