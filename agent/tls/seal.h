// Sealing gossip packets with AES-256-GCM under the cluster keyring
// (DESIGN.md section 3). No replay protection here: the gossip layer drops
// replays by sequence number.
//
// Packet layout (version 1):
//   [u8 version = 1][4-byte key id][12-byte nonce][ciphertext][16-byte GCM tag]
// so a sealed packet is kSealOverhead (33) bytes longer than its plaintext.
//
// AAD = the version byte and the key id. GCM already authenticates the nonce
// (it derives the keystream and tag from it); binding the header too means no
// header byte can be altered without failing authentication: a packet cannot
// be relabelled to another format version (whose parser might read the rest
// differently) or to another key id, and every bit of the packet is covered.
//
// Nonces are 96 random bits per packet (RAND_bytes). NIST SP 800-38D caps
// random-nonce GCM at 2^32 messages per key (collision probability below
// 2^-32). A node gossiping 10 packets/s seals 2^32 packets in
// 2^32 / 10 / 86400 / 365 = 13.6 years, per node, with one key. The limit is
// per key across the cluster, so for N nodes the rotation horizon is
// 13.6 / N years at that rate (e.g. ~8 months for 20 nodes): rotate keys
// (keyring.h) well within it.
//
// Thread-safe: pure functions of their arguments (and the RNG).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/tls/keyring.h"
#include "gossync/status.h"

namespace gossync::tls {

inline constexpr uint8_t kSealVersion = 1;
inline constexpr size_t kSealNonceSize = 12;
inline constexpr size_t kSealTagSize = 16;
inline constexpr size_t kSealHeaderSize = 1 + kKeyIdSize + kSealNonceSize;  // 17
inline constexpr size_t kSealOverhead = kSealHeaderSize + kSealTagSize;     // 33
// The largest UDP payload over IPv4; gossip packets stay under 1,200 bytes.
inline constexpr size_t kMaxSealedPacket = 65507;
inline constexpr size_t kMaxSealPlaintext = kMaxSealedPacket - kSealOverhead;

// Seals `plaintext` with the keyring's primary key into `*out` (replacing
// its contents). LimitExceeded above kMaxSealPlaintext; Internal if the RNG
// or cipher fails.
Status Seal(const Keyring& keyring, std::span<const uint8_t> plaintext, std::vector<uint8_t>* out);

// Why a packet did not open; the Status code of Open's error tells them apart
// (use ClassifyOpenError to count drops by reason).
enum class OpenError {
  kNone,            // OK
  kTooShort,        // Corruption: shorter than kSealOverhead
  kTooLong,         // LimitExceeded: longer than kMaxSealedPacket
  kUnknownVersion,  // InvalidArgument: version byte is not kSealVersion
  kUnknownKeyId,    // NotFound: no key in the ring has that id
  kAuthFailed,      // PermissionDenied: the tag does not verify (tampered, or another key)
  kInternal,        // Internal: the cipher failed (not the packet's fault)
};
OpenError ClassifyOpenError(const Status& status);
const char* OpenErrorName(OpenError e);  // "too_short", ... (metric labels)

// Opens a sealed packet with the key its id names. On success `*plaintext`
// holds the bytes; on any error it is empty (no unauthenticated byte escapes).
Status Open(const Keyring& keyring, std::span<const uint8_t> packet,
            std::vector<uint8_t>* plaintext);

}  // namespace gossync::tls
