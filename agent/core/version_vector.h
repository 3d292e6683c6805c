// Version vectors (DESIGN.md section 1): sorted (node id, counter) pairs.
// A node's counter for an entry is the node-wide change counter at the time
// of its last local change of that entry, so it only grows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gossync::core {

// Random 64-bit identity of one node's index, made when the index is created
// and persisted with it (a reinstalled node gets a new one).
using NodeId = uint64_t;

struct VvPair {
  NodeId node = 0;
  uint64_t counter = 0;  // > 0 in a valid vector
  bool operator==(const VvPair&) const = default;
};

enum class VvOrder {
  kEqual,       // same history
  kGreater,     // this dominates other (other happened before)
  kLess,        // other dominates this
  kConcurrent,  // neither saw the other: a conflict unless contents agree
};

class VersionVector {
 public:
  VersionVector() = default;
  // REQUIRES: pairs sorted by node, unique nodes, counters > 0 (see Valid()).
  explicit VersionVector(std::vector<VvPair> pairs);

  // Checks the invariants above; for vectors decoded from a peer.
  static bool Valid(const std::vector<VvPair>& pairs);

  VvOrder Compare(const VersionVector& other) const;
  // Pointwise maximum.
  void Merge(const VersionVector& other);
  // Records a local change: this node's counter becomes `counter`.
  // REQUIRES: counter > Get(node).
  void Set(NodeId node, uint64_t counter);
  uint64_t Get(NodeId node) const;  // 0 if absent

  const std::vector<VvPair>& pairs() const { return pairs_; }
  bool empty() const { return pairs_.empty(); }
  // "{1a2b:3, 9f00:7}" with node ids in hex.
  std::string ToString() const;

  bool operator==(const VersionVector&) const = default;

 private:
  std::vector<VvPair> pairs_;  // sorted by node, unique
};

}  // namespace gossync::core
