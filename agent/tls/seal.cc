#include "agent/tls/seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>

#include "agent/tls/ossl.h"

namespace gossync::tls {
namespace {

using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, OsslDeleter<EVP_CIPHER_CTX_free>>;

constexpr size_t kAadSize = 1 + kKeyIdSize;

}  // namespace

Status Seal(const Keyring& keyring, std::span<const uint8_t> plaintext, std::vector<uint8_t>* out) {
  if (plaintext.size() > kMaxSealPlaintext) {
    return Status::LimitExceeded("gossip packet of " + std::to_string(plaintext.size()) +
                                 " bytes is too large to seal (at most " +
                                 std::to_string(kMaxSealPlaintext) + ")");
  }
  const GossipKey& key = keyring.primary();
  out->resize(kSealOverhead + plaintext.size());
  uint8_t* p = out->data();
  p[0] = kSealVersion;
  std::copy(key.id.begin(), key.id.end(), p + 1);
  uint8_t* nonce = p + kAadSize;
  if (RAND_bytes(nonce, static_cast<int>(kSealNonceSize)) != 1) {
    out->clear();
    return OpensslError(Code::kInternal, "random nonce");
  }
  uint8_t* ct = p + kSealHeaderSize;
  uint8_t* tag = ct + plaintext.size();

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  // The default GCM IV length is 12 bytes, our nonce size.
  bool ok =
      ctx &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes.data(), nonce) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, p, static_cast<int>(kAadSize)) == 1 &&
      EVP_EncryptUpdate(ctx.get(), ct, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) == 1 &&
      static_cast<size_t>(len) == plaintext.size() &&
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) == 1 && len == 0 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kSealTagSize), tag) ==
          1;
  if (!ok) {
    out->clear();
    return OpensslError(Code::kInternal, "AES-256-GCM seal");
  }
  return Status::Ok();
}

Status Open(const Keyring& keyring, std::span<const uint8_t> packet,
            std::vector<uint8_t>* plaintext) {
  plaintext->clear();
  if (packet.size() < kSealOverhead) {
    return Status::Corruption("sealed packet too short: " + std::to_string(packet.size()) +
                              " bytes, at least " + std::to_string(kSealOverhead));
  }
  if (packet.size() > kMaxSealedPacket) {
    return Status::LimitExceeded("sealed packet too long: " + std::to_string(packet.size()) +
                                 " bytes");
  }
  if (packet[0] != kSealVersion) {
    return Status::InvalidArgument("sealed packet has unknown version " +
                                   std::to_string(packet[0]));
  }
  KeyId id;
  std::copy(packet.begin() + 1, packet.begin() + 1 + kKeyIdSize, id.begin());
  const GossipKey* key = keyring.Find(id);
  if (key == nullptr) {
    return Status::NotFound("sealed packet names key id " + KeyIdHex(id) +
                            ", which is not in the keyring");
  }
  const uint8_t* nonce = packet.data() + kAadSize;
  const uint8_t* ct = packet.data() + kSealHeaderSize;
  const size_t ct_size = packet.size() - kSealOverhead;
  const uint8_t* tag = ct + ct_size;

  plaintext->resize(ct_size);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool setup =
      ctx &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key->bytes.data(), nonce) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, packet.data(), static_cast<int>(kAadSize)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), plaintext->data(), &len, ct, static_cast<int>(ct_size)) == 1 &&
      static_cast<size_t>(len) == ct_size &&
      // The API takes a non-const pointer but only reads the tag.
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kSealTagSize),
                          const_cast<uint8_t*>(tag)) == 1;
  if (!setup) {
    OPENSSL_cleanse(plaintext->data(), plaintext->size());
    plaintext->clear();
    return OpensslError(Code::kInternal, "AES-256-GCM open");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), plaintext->data() + len, &len) != 1) {
    // Decrypted but unauthenticated bytes must not be used, or even kept.
    OPENSSL_cleanse(plaintext->data(), plaintext->size());
    plaintext->clear();
    ERR_clear_error();
    return Status::PermissionDenied(
        "sealed packet failed authentication (tampered, or sealed "
        "with another key that has the same id)");
  }
  return Status::Ok();
}

OpenError ClassifyOpenError(const Status& status) {
  switch (status.code()) {
    case Code::kOk:
      return OpenError::kNone;
    case Code::kCorruption:
      return OpenError::kTooShort;
    case Code::kLimitExceeded:
      return OpenError::kTooLong;
    case Code::kInvalidArgument:
      return OpenError::kUnknownVersion;
    case Code::kNotFound:
      return OpenError::kUnknownKeyId;
    case Code::kPermissionDenied:
      return OpenError::kAuthFailed;
    default:
      return OpenError::kInternal;
  }
}

const char* OpenErrorName(OpenError e) {
  switch (e) {
    case OpenError::kNone:
      return "ok";
    case OpenError::kTooShort:
      return "too_short";
    case OpenError::kTooLong:
      return "too_long";
    case OpenError::kUnknownVersion:
      return "unknown_version";
    case OpenError::kUnknownKeyId:
      return "unknown_key_id";
    case OpenError::kAuthFailed:
      return "auth_failed";
    case OpenError::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace gossync::tls
