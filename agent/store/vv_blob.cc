#include "agent/store/vv_blob.h"

#include <utility>
#include <vector>

namespace gossync::store {

std::string EncodeVersionVector(const core::VersionVector& vv) {
  std::string out;
  out.reserve(vv.pairs().size() * 12);
  for (const core::VvPair& p : vv.pairs()) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(p.node >> shift));
    uint64_t c = p.counter;
    while (c >= 0x80) {
      out.push_back(static_cast<char>((c & 0x7f) | 0x80));
      c >>= 7;
    }
    out.push_back(static_cast<char>(c));
  }
  return out;
}

Result<core::VersionVector> DecodeVersionVector(std::span<const uint8_t> b) {
  std::vector<core::VvPair> pairs;
  size_t i = 0;
  while (i < b.size()) {
    if (b.size() - i < 9) return Status::Corruption("version vector truncated");
    core::VvPair p;
    for (int k = 0; k < 8; ++k) p.node = (p.node << 8) | b[i++];
    uint64_t c = 0;
    int shift = 0;
    while (true) {
      if (i >= b.size()) return Status::Corruption("version vector truncated");
      if (shift > 63) return Status::Corruption("version vector counter too long");
      uint8_t byte = b[i++];
      uint64_t bits = byte & 0x7f;
      if (shift == 63 && bits > 1) return Status::Corruption("version vector counter overflows");
      c |= bits << shift;
      shift += 7;
      if (!(byte & 0x80)) break;
    }
    p.counter = c;
    pairs.push_back(p);
  }
  if (!core::VersionVector::Valid(pairs)) return Status::Corruption("version vector not valid");
  return core::VersionVector(std::move(pairs));
}

}  // namespace gossync::store
