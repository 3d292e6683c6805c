// The compact version-vector blob of the index's `vv` column: per pair, the
// node id as 8 big-endian bytes and the counter as an unsigned LEB128 varint,
// pairs in the vector's (sorted) order. A one-node vector takes 9-17 bytes.
// This is a storage format only; the wire uses msgpack (agent/wire).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "agent/core/version_vector.h"
#include "gossync/status.h"

namespace gossync::store {

std::string EncodeVersionVector(const core::VersionVector& vv);
// Corruption if the bytes are truncated, a varint is overlong or overflows,
// or the pairs are not a valid vector (sorted, unique, counters > 0).
Result<core::VersionVector> DecodeVersionVector(std::span<const uint8_t> bytes);

}  // namespace gossync::store
