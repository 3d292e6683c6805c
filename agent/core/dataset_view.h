// The local dataset as a repair session reads it (repair_session.h): the
// Merkle tree's digests and the index's entries, synchronously.
//
// In the daemon it is backed by the SQLite index and the MerkleTree and is
// called on the store thread; tests use an in-memory one
// (tests/testutil/mem_dataset.h). Reads see every change the driver has
// completed (an apply is visible here before the driver reports it done).
// Errors are the index's (I/O); the session aborts on one.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "agent/core/entry.h"
#include "agent/core/hash.h"
#include "agent/core/repair_messages.h"
#include "gossync/status.h"

namespace gossync::core {

class DatasetView {
 public:
  virtual ~DatasetView() = default;

  // The tree's depth (cluster-wide; the HELLO checks it).
  virtual int depth() const = 0;
  // The root digest; zero for an empty dataset. Tombstones are entries.
  virtual Hash256 Root() = 0;
  // Entries in the tree (live and tombstones), for HELLO.
  virtual uint64_t EntryCount() = 0;
  // The 16 child digests of node (level, prefix).
  // REQUIRES: level < depth() and prefix < 16^level (the session checks a
  // peer's addresses with MerkleTree::IsValidNode first).
  virtual std::array<Hash256, 16> ChildDigests(int level, uint32_t prefix) = 0;

  // (PathKey, Truncate(digest)) of every entry in `bucket`, sorted.
  virtual Result<std::vector<KeyDigest>> ListBucket(uint32_t bucket) = 0;
  // The entries of `bucket` whose PathKey is in `keys` (sorted, unique).
  virtual Result<std::vector<Entry>> EntriesByKeys(uint32_t bucket,
                                                   std::span<const uint64_t> keys) = 0;
  // The entry at `path` (live or tombstone), or nullopt.
  virtual Result<std::optional<Entry>> Get(std::string_view path) = 0;
  // Calls `fn` for every entry in the subtree of node (level, prefix), for
  // the zero-digest shortcut. REQUIRES: prefix < 16^level, level <= depth().
  virtual Status ForEachUnder(int level, uint32_t prefix,
                              const std::function<void(const Entry&)>& fn) = 0;
};

}  // namespace gossync::core
