// SHA-256 digests, the one hash the product uses (content, entries, tree).
// Thread-safe: every function is pure. Backed by libcrypto's EVP (no I/O).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace gossync::core {

using Hash256 = std::array<uint8_t, 32>;

inline constexpr Hash256 kZeroHash{};

bool IsZero(const Hash256& h);
std::string ToHex(const Hash256& h);
std::string ToHex(std::span<const uint8_t> bytes);
// Parses 64 hex digits; false on anything else.
bool FromHex(std::string_view hex, Hash256* out);

Hash256 Sha256(std::span<const uint8_t> bytes);
Hash256 Sha256(std::string_view bytes);

// Incremental SHA-256. Not copyable. One instance per thread.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view bytes);
  // Returns the digest and resets the hasher for reuse.
  Hash256 Finish();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

}  // namespace gossync::core
