// The gossip keyring (DESIGN.md section 3): the AES-256-GCM keys that seal
// and open gossip packets, rotated with no downtime.
//
// File format (text, mode 0600):
//   # comments (a '#' anywhere starts one) and blank lines are ignored
//   <base64 of 32 random bytes>     one key per line, 44 characters
// The first key is the primary: it seals. Every key opens. At most 16 keys.
// Rotation: put the new key first on every node (all can open it), reload;
// once every node seals with it, remove the old key.
//
// Each key has a 4-byte id, the first 4 bytes of SHA-256("gossync-key-id" ||
// key). A sealed packet carries the id, so the receiver picks the key directly.
// The id reveals nothing usable about the key (a hash prefix) and lets an
// operator compare keyrings across nodes (KeyIdHex) without showing the keys.
//
// Thread-safety: a Keyring is immutable after construction; share it freely
// (const). Key bytes are wiped when a Keyring is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gossync/status.h"

namespace gossync::tls {

inline constexpr size_t kGossipKeySize = 32;
inline constexpr size_t kKeyIdSize = 4;
inline constexpr size_t kMaxKeyringKeys = 16;
inline constexpr size_t kMaxKeyringFileBytes = 64 * 1024;

using GossipKeyBytes = std::array<uint8_t, kGossipKeySize>;
using KeyId = std::array<uint8_t, kKeyIdSize>;

KeyId ComputeKeyId(const GossipKeyBytes& key);
std::string KeyIdHex(const KeyId& id);  // 8 lowercase hex digits

struct GossipKey {
  GossipKeyBytes bytes;
  KeyId id;
};

class Keyring {
 public:
  // keys[0] is the primary. InvalidArgument if empty, more than
  // kMaxKeyringKeys, a key repeated, or two keys sharing an id.
  static Result<Keyring> FromKeys(std::span<const GossipKeyBytes> keys);
  // Parses the file format above. Errors name `source` and the line number:
  // "gossip.keys line 3: ...".
  static Result<Keyring> Parse(std::string_view text, std::string_view source = "keyring");

  Keyring(const Keyring& other) = default;
  Keyring& operator=(const Keyring& other);
  Keyring(Keyring&& other) noexcept = default;
  Keyring& operator=(Keyring&& other) noexcept;
  ~Keyring();

  const GossipKey& primary() const { return keys_.front(); }
  // The key with this id, or nullptr.
  const GossipKey* Find(const KeyId& id) const;
  size_t size() const { return keys_.size(); }
  const std::vector<GossipKey>& keys() const { return keys_; }

 private:
  Keyring() = default;
  void Wipe();
  std::vector<GossipKey> keys_;  // never empty
};

struct LoadedKeyring {
  Keyring keyring;
  // Non-empty when the file is readable by more than its owner (mode wider
  // than 0600): a line for the caller to log as a warning.
  std::string warning;
};

// Reads and parses a keyring file (at most kMaxKeyringFileBytes). Errors name
// the file (and the line, for a bad line).
Result<LoadedKeyring> LoadKeyring(const std::string& path);

// One new key: base64 of 32 bytes from RAND_bytes, 44 characters, no newline.
Result<std::string> GenerateKeyLine();

// Writes a new keyring file holding one new key (with a comment header),
// mode 0600, atomically. AlreadyExists if `path` exists and !force: replacing
// a keyring cuts the node off the cluster.
Status WriteNewKeyring(const std::string& path, bool force = false);

}  // namespace gossync::tls
