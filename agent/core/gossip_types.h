// Domain messages of the gossip protocol (DESIGN.md section 3): what
// core::Membership consumes and produces. The bytes on the wire are
// agent/wire/gossip_codec's business (STYLE.md habit 4); this file only fixes
// their size, so the core can pack piggybacked updates to a byte budget
// without knowing msgpack (EncodedSize below; the codec's tests hold the
// encoder to it byte for byte).
//
// Every packet, whatever its type, carries a header: the sender's own member
// record (name, state, incarnation, addresses) and its replay-protection
// fields (boot id, sequence number); then a typed body; then piggybacked
// membership updates (for a SyncPage: the page's member records).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/core/hash.h"

namespace gossync::core {

// Wire values; append only.
enum class MemberState : uint8_t {
  kAlive = 0,
  kSuspect = 1,
  kDead = 2,
  kLeft = 3,  // left on purpose (graceful leave); final for that incarnation
};
inline constexpr int kMemberStateCount = 4;
// "alive", "suspect", "dead", "left" (the names `gossync peers --json` uses).
const char* MemberStateName(MemberState s);

// The facts about a member that change only together with its incarnation.
// Immutable once made and shared (MemberInfoPtr): a cluster of N nodes holds
// N views of each member, and in the simulator all N share one MemberInfo.
struct MemberInfo {
  std::string name;         // IsValidNodeName
  std::string gossip_addr;  // advertised UDP address, "host:port" (IsValidHostPort)
  std::string repair_addr;  // advertised TCP address of the repair service
  bool operator==(const MemberInfo&) const = default;
};
using MemberInfoPtr = std::shared_ptr<const MemberInfo>;
MemberInfoPtr MakeMemberInfo(std::string name, std::string gossip_addr, std::string repair_addr);

// One piggybacked membership update ("member X is S at incarnation I").
struct MemberUpdate {
  MemberState state = MemberState::kAlive;
  uint64_t incarnation = 0;
  MemberInfoPtr info;  // never null; addresses travel (and matter) only with kAlive
  uint64_t boot = 0;   // kAlive: the member's boot id (packets to it carry it); else 0
  std::string from;    // kSuspect, kDead: the member that declared it; else empty
};

// Bodies. The numeric message types are part of the protocol: append only.
enum class MessageType : uint8_t {
  kPing = 1,
  kAck = 2,
  kPingReq = 3,
  kGossip = 4,
  kSyncRequest = 5,
  kSyncPage = 6,
};
const char* MessageTypeName(MessageType t);

// "Are you there?" Also the join request (sent to a seed's address, to
// nobody in particular) and the challenge that proves a run of a peer is live.
struct Ping {
  uint64_t probe_id = 0;  // random; the ack echoes it
  // The prober's view of the target, so a target that is suspected, thought
  // dead, or behind (restarted) refutes at once instead of after gossip.
  uint64_t target_incarnation = 0;
  MemberState target_state = MemberState::kAlive;
};

struct Ack {
  uint64_t probe_id = 0;
};

// "Ping `target` for me": the indirect probe of SWIM.
struct PingReq {
  uint64_t probe_id = 0;  // the requester's probe; the relayed ack carries it
  std::string target;
  std::string target_addr;
  uint64_t target_boot = 0;
  uint64_t target_incarnation = 0;
  MemberState target_state = MemberState::kAlive;
};

// The root exchange: the sender's dataset as of now. Its name, incarnation and
// repair address are in the header.
struct Gossip {
  Hash256 root{};
  uint64_t entry_count = 0;
  uint64_t hlc = 0;
};

// Pull of a peer's member list, one page per request (a joiner's, and a
// periodic anti-entropy exchange). `cursor` is opaque to the requester: 0 for
// the first page, then the page's next_cursor.
struct SyncRequest {
  uint32_t cursor = 0;
};
struct SyncPage {
  uint32_t next_cursor = 0;
  bool done = false;  // the last page
};

using Body = std::variant<Ping, Ack, PingReq, Gossip, SyncRequest, SyncPage>;
MessageType TypeOf(const Body& body);

struct Packet {
  // Header: the sender's own record...
  MemberInfoPtr sender;  // never null; an empty gossip_addr means "the source address"
  MemberState sender_state = MemberState::kAlive;  // kAlive or kLeft
  uint64_t incarnation = 0;
  // ...replay protection: the sender's boot id (greater at every process
  // start) and a sequence number that grows by one per packet in that run...
  uint64_t boot_id = 0;
  uint64_t seq = 0;
  // ...and the receiver it is meant for: its name and boot id as the sender
  // knows them (both empty/0 only in a join ping to a seed address).
  std::string to;
  uint64_t to_boot = 0;
  Body body;
  std::vector<MemberUpdate> updates;
};

// ---- Bounds ----------------------------------------------------------------

// Every gossip datagram stays under this many bytes (DESIGN.md section 3).
inline constexpr size_t kMaxDatagramBytes = 1200;
// What sealing adds (tls::kSealOverhead: version, key id, nonce, GCM tag).
inline constexpr size_t kSealOverhead = 33;
// The default budget for an encoded packet before sealing.
inline constexpr size_t kDefaultMaxPacketBytes = kMaxDatagramBytes - kSealOverhead;

inline constexpr size_t kMaxAddrBytes = 255;        // "host:port"
inline constexpr size_t kMaxUpdatesPerPacket = 64;  // decoder limit
inline constexpr uint8_t kProtocolVersion = 1;

// The exact size of the packet as agent/wire/gossip_codec encodes it: one
// message-type byte, then a msgpack array (see gossip_codec.h for the layout).
size_t EncodedSize(const Packet& p);
// The bytes one update adds to a packet's update list (its share of the
// list's array header aside: see kUpdateListHeaderMax).
size_t EncodedSize(const MemberUpdate& u);
// A packet's size with an empty update list; adding updates grows the list's
// array header by at most this much (a msgpack array16 header is 3 bytes).
size_t EncodedSizeWithoutUpdates(const Packet& p);
inline constexpr size_t kUpdateListHeaderMax = 3;

// "host:port": host is a dotted IPv4 address, a bracketed IPv6 address
// ("[::1]", an optional "%zone" inside the brackets) or a DNS name (letters,
// digits, '-' and '.'); port is decimal 1..65535; at most kMaxAddrBytes. A
// format check only: nothing is resolved.
bool IsValidHostPort(std::string_view addr);

}  // namespace gossync::core
