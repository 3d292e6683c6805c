// The messages of the repair protocol (agent/wire/PROTOCOL.md) as plain
// domain structs. Their msgpack form lives in agent/wire/repair_codec.h; the
// session (repair_session.h) only ever sees these.
//
// The alternatives of RepairMessage are in wire-type order: the variant index
// of a message is its type on the wire (0..12). UnknownMsg stands for a type
// this version does not know (a newer peer's): the session skips and counts it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/core/entry.h"
#include "agent/core/hash.h"

namespace gossync::core {

inline constexpr uint16_t kRepairProtocolVersion = 2;  // 2: entries carry a dot
// Content moves in blocks of this size (the last one shorter). A protocol
// constant; tests lower it on both sides (RepairOptions::block_size).
inline constexpr uint32_t kDefaultBlockSize = 128 * 1024;
inline constexpr size_t kDefaultMaxFrameBytes = 4 << 20;

// HELLO flags.
inline constexpr uint32_t kHelloDryRun = 1u << 0;    // diff only, nothing moves
inline constexpr uint32_t kHelloCatchUp = 1u << 1;   // away longer than tombstone_ttl
inline constexpr uint32_t kHelloUnsynced = 1u << 2;  // never synced (a new node or index)

// Per-message limits of PROTOCOL.md. A decoded message never exceeds them.
inline constexpr size_t kMaxNodesItems = 4096;
inline constexpr size_t kMaxLeavesItems = 4096;  // buckets in one LEAVES
inline constexpr size_t kMaxLeafPairs = 65536;   // (key, digest) pairs in one LEAVES
inline constexpr size_t kMaxEntriesItems = 1024;
inline constexpr size_t kMaxWantKeys = 65536;
inline constexpr size_t kMaxBlockReqIndexes = 1024;
inline constexpr size_t kMaxBlockListHashes = 8192;  // in one BLOCKLIST message
inline constexpr size_t kMaxReasonBytes = 1024;      // ABORT reason, REQ_ERROR message
// Per session: blocks requested and not yet received (puller) or sent
// (server), bounded in count and in bytes. Counted in blocks alone (64), a
// window of small files cost a round trip per 64 files; the bytes bound
// keeps what a server holds in memory for one session at 8 MiB.
inline constexpr size_t kMaxInFlightBlocks = 1024;
inline constexpr uint64_t kMaxInFlightBytes = uint64_t{8} << 20;
// A file of more blocks is not transferred (128 GiB at 128 KiB blocks): its
// block list alone would take 32 MiB.
inline constexpr uint64_t kMaxBlocksPerFile = uint64_t{1} << 20;

// A digest truncated to its first 8 bytes, read big-endian. Zero means an
// empty subtree (a non-empty one truncating to zero is a 2^-64 event, and
// only makes the other side send that subtree's entries).
using ShortDigest = uint64_t;
ShortDigest Truncate(const Hash256& digest);

// The path key: the first 8 bytes of SHA-256(path), big-endian. Its top
// 4*depth bits are the path's bucket (MerkleTree::BucketOf).
uint64_t PathKey(std::string_view path);
inline uint32_t BucketOfKey(uint64_t key, int depth) {
  return static_cast<uint32_t>(key >> (64 - 4 * depth));
}

enum class RepairMessageType : uint8_t {
  kHello = 0,
  kNodes = 1,
  kLeaves = 2,
  kEntries = 3,
  kWant = 4,
  kBlockListReq = 5,
  kBlockList = 6,
  kBlockReq = 7,
  kBlock = 8,
  kReqError = 9,
  kFin = 10,
  kFinAck = 11,
  kAbort = 12,
};
inline constexpr uint8_t kLastMessageType = 12;

// REQ_ERROR codes; append only.
enum class ReqErrorCode : uint8_t {
  kNotFound = 1,  // no live file with that path and hash in the index
  kChanged = 2,   // the file changed on disk since it was indexed
  kIoError = 3,   // the server could not read it
};

struct HelloMsg {
  uint16_t version = kRepairProtocolVersion;
  std::string name;  // the sender's node name
  uint8_t depth = 0;
  Hash256 root{};
  uint64_t entries = 0;
  uint64_t hlc = 0;
  uint32_t flags = 0;
  bool operator==(const HelloMsg&) const = default;
};

// The 16 child digests of node (level - 1, prefix).
struct NodeItem {
  uint32_t prefix = 0;
  std::array<ShortDigest, 16> digests{};
  bool operator==(const NodeItem&) const = default;
};
struct NodesMsg {
  uint8_t level = 0;  // the level of the children listed, 1..depth
  std::vector<NodeItem> items;
  bool operator==(const NodesMsg&) const = default;
};

struct KeyDigest {
  uint64_t key = 0;        // PathKey
  ShortDigest digest = 0;  // Truncate(entry digest)
  bool operator==(const KeyDigest&) const = default;
  auto operator<=>(const KeyDigest&) const = default;
};
struct LeafItem {
  uint32_t bucket = 0;
  std::vector<KeyDigest> keys;  // every entry of the bucket, sorted
  bool operator==(const LeafItem&) const = default;
};
struct LeavesMsg {
  std::vector<LeafItem> items;
  bool operator==(const LeavesMsg&) const = default;
};

struct EntriesMsg {
  std::vector<Entry> entries;
  bool operator==(const EntriesMsg&) const = default;
};

struct WantMsg {
  std::vector<uint64_t> keys;  // path keys
  bool operator==(const WantMsg&) const = default;
};

struct BlockListReqMsg {
  uint32_t req = 0;
  std::string path;
  Hash256 hash{};  // the content hash of the version wanted
  bool operator==(const BlockListReqMsg&) const = default;
};

struct BlockListMsg {
  uint32_t req = 0;
  uint64_t size = 0;  // file size
  uint32_t block_size = 0;
  uint32_t first = 0;  // index of hashes[0]
  std::vector<Hash256> hashes;
  bool last = false;  // no more BLOCKLIST for this req
  bool operator==(const BlockListMsg&) const = default;
};

struct BlockReqMsg {
  uint32_t req = 0;
  std::string path;
  Hash256 hash{};
  std::vector<uint32_t> indexes;
  bool operator==(const BlockReqMsg&) const = default;
};

struct BlockMsg {
  uint32_t req = 0;
  uint32_t index = 0;
  std::vector<uint8_t> data;
  bool operator==(const BlockMsg&) const = default;
};

struct ReqErrorMsg {
  uint32_t req = 0;
  uint8_t code = 0;  // ReqErrorCode (an unknown code is still an error)
  std::string message;
  bool operator==(const ReqErrorMsg&) const = default;
};

struct FinMsg {
  bool operator==(const FinMsg&) const = default;
};
struct FinAckMsg {
  bool operator==(const FinAckMsg&) const = default;
};
struct AbortMsg {
  std::string reason;
  bool operator==(const AbortMsg&) const = default;
};
struct UnknownMsg {
  uint64_t type = 0;
  bool operator==(const UnknownMsg&) const = default;
};

using RepairMessage =
    std::variant<HelloMsg, NodesMsg, LeavesMsg, EntriesMsg, WantMsg, BlockListReqMsg, BlockListMsg,
                 BlockReqMsg, BlockMsg, ReqErrorMsg, FinMsg, FinAckMsg, AbortMsg, UnknownMsg>;

// "HELLO", "NODES", ...; "UNKNOWN" for UnknownMsg.
const char* MessageName(const RepairMessage& m);

}  // namespace gossync::core
