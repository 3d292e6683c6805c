// Deciding between two versions of one path (DESIGN.md section 1). Every node
// reaches the same decision for the same pair, whichever side is local.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/core/entry.h"

namespace gossync::core {

enum class Decision {
  kSame,        // equal version vectors and digests: nothing to do
  kKeepLocal,   // local dominates: the peer should take ours
  kTakeRemote,  // remote dominates: take theirs
  kMerge,       // concurrent, identical content and metadata (or both
                // tombstones): keep the content, adopt `winner` (merged VV)
  kConflict,    // concurrent and different: `winner` becomes the live
                // version, `copy` (the loser's content) a new entry
};

struct Resolution {
  Decision decision = Decision::kSame;
  // The entry every node ends up with at this path. Always set: kSame and
  // kKeepLocal: local; kTakeRemote: remote; kMerge and kConflict: the
  // winner's content with the pointwise-max VV.
  std::optional<Entry> winner;
  // For kConflict only, and only when the loser has content to keep (a live
  // file or symlink): the loser at ConflictCopyPath(...), with the loser's
  // VV, HLC and origin, so every node makes the identical copy.
  std::optional<Entry> copy;
};

// The conflict rule:
// - VV order decides when the VVs are ordered.
// - Equal VVs with equal digests are kSame; equal VVs with different
//   digests (a node reused its counters, e.g. after a restore from backup)
//   are treated as concurrent, so the pair still converges.
// - Concurrent: identical (kind, mode, hash, target, deleted) -> kMerge;
//   a live version beats a tombstone (a write is never lost to a delete),
//   except a live version whose dot the tombstone's VV covers: that delete
//   saw this content, so the tombstone wins and no copy is made (the VVs
//   are concurrent only because a merge added history the delete did not
//   see; without the dot the deleted content would come back);
//   a directory beats a file or symlink (its children stay put; the other
//   becomes the copy); a version whose VV covers the other's dot (it was
//   made after seeing that content) beats it, with no copy; otherwise the
//   greater (hlc, origin) wins (then the
//   greater digest, so the order is total). kMerge keeps the metadata of the
//   greater (hlc, origin). A losing tombstone or directory leaves no copy.
// Symmetric: Resolve(a, b) and Resolve(b, a) give the same winner and copy.
// REQUIRES: local.path == remote.path; both entries valid (ValidateEntry).
Resolution Resolve(const Entry& local, const Entry& remote);

// NAME.sync-conflict-YYYYMMDD-HHMMSS-NODE.EXT in the same directory, with the
// UTC time of `hlc` and the extension (the part of the base name after its
// last '.', unless that dot is the first or the last character). The NAME
// part is shortened, at a UTF-8 boundary, so the component fits in 255 bytes
// and the path in 4096; an extension too long to leave room for one byte of
// NAME counts as part of NAME. Times after 9999-12-31 23:59:59 are clamped
// to it. A `node` outside [a-z0-9._-] has those bytes replaced by '_'.
// The result fails ValidatePath only if the directory part alone leaves no
// room for the suffix (a directory path of more than about 4000 bytes).
// `later_s` adds seconds to the name's time: the fallback names used when
// the first is taken by another version (the same node lost twice within a
// second of HLC time, which a node whose clock runs ahead makes common).
std::string ConflictCopyPath(std::string_view path, uint64_t hlc, std::string_view node,
                             uint32_t later_s = 0);

// Fallback names tried after the first one (later_s = 1 .. this).
inline constexpr uint32_t kConflictCopyFallbacks = 16;

// True for names that ConflictCopyPath produces.
bool IsConflictCopy(std::string_view path);

// The path a conflict copy was made from: ConflictCopyPath's inverse. Node
// names may hold dots, so "x.sync-conflict-...-a.b" reads as node "a" and
// extension "b"; the copy itself is always exact, this is for display.
// REQUIRES: IsConflictCopy(path).
std::string ConflictOriginalPath(std::string_view path);

}  // namespace gossync::core
