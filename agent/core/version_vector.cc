#include "agent/core/version_vector.h"

#include <algorithm>
#include <cstdio>

#include "gossync/status.h"

namespace gossync::core {

VersionVector::VersionVector(std::vector<VvPair> pairs) : pairs_(std::move(pairs)) {
  GOSSYNC_CHECK(Valid(pairs_));
}

bool VersionVector::Valid(const std::vector<VvPair>& pairs) {
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (pairs[i].counter == 0) return false;
    if (i > 0 && pairs[i - 1].node >= pairs[i].node) return false;
  }
  return true;
}

VvOrder VersionVector::Compare(const VersionVector& other) const {
  // One merge-walk over both sorted lists; an absent node counts as 0.
  bool this_ahead = false;
  bool other_ahead = false;
  auto a = pairs_.begin();
  auto b = other.pairs_.begin();
  while (a != pairs_.end() || b != other.pairs_.end()) {
    if (b == other.pairs_.end() || (a != pairs_.end() && a->node < b->node)) {
      this_ahead = true;
      ++a;
    } else if (a == pairs_.end() || b->node < a->node) {
      other_ahead = true;
      ++b;
    } else {
      if (a->counter > b->counter) this_ahead = true;
      if (b->counter > a->counter) other_ahead = true;
      ++a;
      ++b;
    }
    if (this_ahead && other_ahead) return VvOrder::kConcurrent;
  }
  if (this_ahead) return VvOrder::kGreater;
  if (other_ahead) return VvOrder::kLess;
  return VvOrder::kEqual;
}

void VersionVector::Merge(const VersionVector& other) {
  std::vector<VvPair> out;
  out.reserve(pairs_.size() + other.pairs_.size());
  auto a = pairs_.begin();
  auto b = other.pairs_.begin();
  while (a != pairs_.end() || b != other.pairs_.end()) {
    if (b == other.pairs_.end() || (a != pairs_.end() && a->node < b->node)) {
      out.push_back(*a++);
    } else if (a == pairs_.end() || b->node < a->node) {
      out.push_back(*b++);
    } else {
      out.push_back({a->node, std::max(a->counter, b->counter)});
      ++a;
      ++b;
    }
  }
  pairs_ = std::move(out);
}

void VersionVector::Set(NodeId node, uint64_t counter) {
  auto it = std::lower_bound(pairs_.begin(), pairs_.end(), node,
                             [](const VvPair& p, NodeId n) { return p.node < n; });
  if (it != pairs_.end() && it->node == node) {
    GOSSYNC_CHECK(counter > it->counter);
    it->counter = counter;
  } else {
    GOSSYNC_CHECK(counter > 0);
    pairs_.insert(it, VvPair{node, counter});
  }
}

uint64_t VersionVector::Get(NodeId node) const {
  auto it = std::lower_bound(pairs_.begin(), pairs_.end(), node,
                             [](const VvPair& p, NodeId n) { return p.node < n; });
  return it != pairs_.end() && it->node == node ? it->counter : 0;
}

std::string VersionVector::ToString() const {
  std::string s = "{";
  char buf[48];
  for (size_t i = 0; i < pairs_.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "%s%llx:%llu", i ? ", " : "",
                  static_cast<unsigned long long>(pairs_[i].node),
                  static_cast<unsigned long long>(pairs_[i].counter));
    s += buf;
  }
  s += "}";
  return s;
}

}  // namespace gossync::core
