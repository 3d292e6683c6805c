#include "agent/core/hash.h"

#include <openssl/evp.h>

#include "gossync/status.h"

namespace gossync::core {
namespace {

// Fetched once: an explicit fetch avoids OpenSSL 3's per-call provider lookup,
// which costs more than hashing a Merkle node. The EVP_MD is immutable and
// shared safely between threads; it lives for the whole process.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    GOSSYNC_CHECK(fetched != nullptr);
    return fetched;
  }();
  return md;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool IsZero(const Hash256& h) { return h == kZeroHash; }

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

std::string ToHex(const Hash256& h) { return ToHex(std::span<const uint8_t>(h)); }

bool FromHex(std::string_view hex, Hash256* out) {
  if (hex.size() != 64) return false;
  Hash256 h;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    h[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *out = h;
  return true;
}

Hash256 Sha256(std::span<const uint8_t> bytes) {
  Hash256 out;
  unsigned int len = 0;
  GOSSYNC_CHECK(EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, Sha256Md(), nullptr) == 1);
  GOSSYNC_CHECK(len == out.size());
  return out;
}

Hash256 Sha256(std::string_view bytes) {
  return Sha256(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  GOSSYNC_CHECK(ctx_ != nullptr);
  GOSSYNC_CHECK(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), Sha256Md(), nullptr) == 1);
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  GOSSYNC_CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size()) == 1);
}

void Sha256Hasher::Update(std::string_view bytes) {
  Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Hash256 Sha256Hasher::Finish() {
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  Hash256 out;
  unsigned int len = 0;
  GOSSYNC_CHECK(EVP_DigestFinal_ex(ctx, out.data(), &len) == 1);
  GOSSYNC_CHECK(len == out.size());
  // Re-initialising with the same EVP_MD reuses the context's provider data.
  GOSSYNC_CHECK(EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) == 1);
  return out;
}

}  // namespace gossync::core
