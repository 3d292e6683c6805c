// core::RepairMessage <-> msgpack (agent/wire/PROTOCOL.md, "Messages").
//
// Every message is a positional array whose element 0 is the type (u8), then
// the fields of the message table in order:
//   HELLO         [0, version, name, depth, root bin32, entries, hlc, flags]
//   NODES         [1, level, [[prefix, digests bin(16*8)] ...]]
//   LEAVES        [2, [[bucket, pairs bin(n*16)] ...]]   pair: key 8 | digest 8
//   ENTRIES       [3, [entry ...]]                        wire/entry_codec.h
//   WANT          [4, keys bin(n*8)]
//   BLOCKLIST_REQ [5, req, path, hash bin32]
//   BLOCKLIST     [6, req, size, block_size, first, hashes bin(n*32), last]
//   BLOCK_REQ     [7, req, path, hash bin32, [index ...]]
//   BLOCK         [8, req, index, data bin]
//   REQ_ERROR     [9, req, code, message]
//   FIN [10]   FIN_ACK [11]   ABORT [12, reason]
// 8-byte keys and digests are big-endian. A known type must have exactly its
// fields (a new field means a protocol version bump); an unknown type
// (> 12) decodes to UnknownMsg whatever follows it.
//
// Decoding goes through SafeUnpack (nesting depth 8, no maps, no ext, str
// at most 4 KiB, bin at most the frame size) and then checks every type,
// every range and the per-message limits of core/repair_messages.h. It never
// throws and never aborts. Thread-safe: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/core/repair_messages.h"
#include "gossync/status.h"

namespace gossync::wire {

// The msgpack body of `m`. REQUIRES: `m` within the limits (the session
// never builds a bigger one); an UnknownMsg encodes as [type].
std::vector<uint8_t> EncodeMessage(const core::RepairMessage& m);
// The whole frame (4-byte length + body), in one buffer.
std::vector<uint8_t> EncodeMessageFrame(const core::RepairMessage& m);

// Decodes one frame body. Errors name the message and the field, e.g.
// "NODES.items[2].prefix: expected an unsigned integer, got str":
// LimitExceeded for a limit (items, bytes, depth), InvalidArgument or
// Corruption for anything else malformed.
Result<core::RepairMessage> DecodeMessage(std::span<const uint8_t> body,
                                          size_t max_frame_bytes = core::kDefaultMaxFrameBytes);

// The counter a decode error is recorded under: "limit_exceeded" or "malformed".
const char* DecodeErrorCounter(const Status& s);

// For a libFuzzer target and the tests: decodes; if that succeeds,
// re-encodes and CHECKs that the message survives the round trip. Returns 0.
int FuzzDecodeMessage(const uint8_t* data, size_t size);

}  // namespace gossync::wire
