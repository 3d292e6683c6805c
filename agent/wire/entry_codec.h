// core::Entry <-> msgpack (the entry lists of repair, DESIGN.md section 4).
//
// An entry is a positional array of kEntryFields values, in this order
// (append-only: a new field goes at the end, with a protocol version bump):
//   0 path      str, canonical (core::ValidatePath)
//   1 kind      uint, core::EntryKind
//   2 mode      uint, permission bits (<= 07777)
//   3 size      uint, bytes
//   4 mtime_ns  int
//   5 hash      bin 32
//   6 target    str, symlink target ("" otherwise)
//   7 vv        array of [node uint, counter uint], sorted by node
//   8 hlc       uint
//   9 origin    str, node name
//  10 deleted   bool
//  11 dot       [node uint, counter uint]; [0, 0] for none (since repair
//               protocol version 2)
// Decoding checks every type and bound and then core::ValidateEntry; it never
// throws and never aborts, whatever the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <msgpack.hpp>
#include <span>
#include <vector>

#include "agent/core/entry.h"
#include "agent/wire/msgpack_util.h"
#include "gossync/status.h"

namespace gossync::wire {

inline constexpr size_t kEntryFields = 12;
// A version vector holds one pair per node that ever changed the entry.
inline constexpr size_t kMaxVvPairs = 1024;

// Appends the entry as one msgpack value (an array of kEntryFields).
template <typename Stream>
void PackEntry(msgpack::packer<Stream>& pk, const core::Entry& e) {
  pk.pack_array(kEntryFields);
  pk.pack(e.path);
  pk.pack(static_cast<uint8_t>(e.kind));
  pk.pack(e.mode);
  pk.pack(e.size);
  pk.pack(e.mtime_ns);
  pk.pack_bin(static_cast<uint32_t>(e.hash.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(e.hash.data()),
                   static_cast<uint32_t>(e.hash.size()));
  pk.pack(e.target);
  pk.pack_array(static_cast<uint32_t>(e.vv.pairs().size()));
  for (const core::VvPair& p : e.vv.pairs()) {
    pk.pack_array(2);
    pk.pack(p.node);
    pk.pack(p.counter);
  }
  pk.pack(e.hlc);
  pk.pack(e.origin);
  pk.pack(e.deleted);
  pk.pack_array(2);
  pk.pack(e.dot.node);
  pk.pack(e.dot.counter);
}

// One entry as a standalone msgpack message.
std::vector<uint8_t> EncodeEntry(const core::Entry& e);

// Converts a decoded msgpack value (e.g. one element of a message's entry
// list) into a valid entry. Errors name the field: "entry.kind: 7 is out of
// range (max 2)".
Result<core::Entry> EntryFromObject(const msgpack::object& o);

// SafeUnpack + EntryFromObject.
Result<core::Entry> DecodeEntry(std::span<const uint8_t> bytes, const UnpackLimits& limits = {});

// For a libFuzzer target: decodes; if that succeeds, re-encodes and checks
// that the entry survives the round trip (CHECK-fails otherwise). Returns 0.
int FuzzDecodeEntry(const uint8_t* data, size_t size);

}  // namespace gossync::wire
