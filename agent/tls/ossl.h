// Small helpers shared by the tls module: owning pointers for OpenSSL objects,
// the OpenSSL error queue as text, SHA-256 hex, and the node-name rule.
// Thread-safe: OpenSSL's error queue is per thread, and nothing here has state.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gossync/status.h"

namespace gossync::tls {

template <auto Fn>
struct OsslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};

using BioPtr = std::unique_ptr<BIO, OsslDeleter<BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OsslDeleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, OsslDeleter<X509_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OsslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OsslDeleter<X509_STORE_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OsslDeleter<SSL_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OsslDeleter<SSL_CTX_free>>;

// Drains this thread's OpenSSL error queue into "reason; reason" (library
// reason strings, e.g. "certificate verify failed"). Empty if the queue was empty.
// With `codes`, the packed error codes are appended to it, oldest first.
std::string DrainOpensslErrors(std::vector<unsigned long>* codes = nullptr);

// A Status of `code` whose message is `what`, followed by ": " and the drained
// OpenSSL errors when there are any.
Status OpensslError(Code code, std::string_view what);

// Lowercase hex.
std::string HexLower(std::span<const unsigned char> bytes);

// Reads a whole PEM/text file of at most `max_bytes`. Errors name the file.
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

}  // namespace gossync::tls
