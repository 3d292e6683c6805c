// core::Packet <-> bytes: the gossip datagram before sealing (DESIGN.md
// section 3; core/gossip_types.h has the domain structs and the exact size
// model, core::EncodedSize, that this encoder is held to byte for byte).
//
// Layout: one message-type byte (core::MessageType, append-only; an unknown
// type is skipped and counted, never an error of the peer's), then one
// msgpack array, positional:
//    0 version      uint, core::kProtocolVersion (1)
//    1 sender       str, node name (core::IsValidNodeName)
//    2 state        uint, kAlive or kLeft
//    3 incarnation  uint
//    4 gossip_addr  str, "host:port" or "" (the receiver uses the source)
//    5 repair_addr  str, "host:port" or ""
//    6 boot_id      uint, > 0
//    7 seq          uint, > 0
//    8 to           str, the receiver's name; "" only in a join ping
//    9 to_boot      uint, the receiver's boot id as known; 0 with to == ""
//   10 body         array, by type:
//        ping         [probe_id, target_incarnation, target_state]
//        ack          [probe_id]
//        ping_req     [probe_id, target, target_addr, target_boot,
//                      target_incarnation, target_state]
//        gossip       [root bin32, entry_count, hlc]
//        sync_request [cursor uint32]
//        sync_page    [next_cursor uint32, done bool]
//   11 updates      array (<= core::kMaxUpdatesPerPacket) of
//        [state, incarnation, name, gossip_addr, repair_addr, boot, from]
//        (addresses and boot only for kAlive, from only for kSuspect/kDead,
//        empty/0 otherwise)
// A newer peer may append fields to any of these arrays; they are ignored.
// An update whose state this version does not know is skipped and counted.
//
// Thread-safe: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/core/gossip_types.h"
#include "gossync/status.h"

namespace gossync::wire {

// Why a datagram was dropped, for the drop counters.
enum class GossipDrop : uint8_t {
  kNone,
  kTooLarge,     // more than core::kMaxDatagramBytes
  kUnknownType,  // a message type this version does not know: skipped
  kBadVersion,   // a protocol version this version does not speak
  kMalformed,    // not msgpack, truncated, trailing bytes, over a decode limit
  kInvalid,      // well-formed, but a field is wrong (type, range, name, address)
};
const char* GossipDropName(GossipDrop d);  // "too_large", "unknown_type", ...

struct GossipDecodeInfo {
  GossipDrop drop = GossipDrop::kNone;
  size_t skipped_updates = 0;  // updates with a state unknown to this version
};

// The encoded packet; its size is exactly core::EncodedSize(p).
// REQUIRES: p.sender != nullptr, every update's info != nullptr.
std::vector<uint8_t> EncodeGossipPacket(const core::Packet& p);

// Decodes and validates one datagram (after tls::Open). On error, `info`
// (if given) says which counter the drop belongs to; the Status says what was
// wrong, for a debug log.
Result<core::Packet> DecodeGossipPacket(std::span<const uint8_t> bytes,
                                        GossipDecodeInfo* info = nullptr);

// For a libFuzzer target: decodes; when that succeeds, re-encodes, checks the
// size model and that decoding the re-encoding gives the same packet
// (CHECK-fails otherwise). Returns 0.
int FuzzDecodeGossipPacket(const uint8_t* data, size_t size);

}  // namespace gossync::wire
