// Building and reading keys and X.509 certificates with OpenSSL 3's EVP/X509
// APIs. The CA (ca.h) is built on these; tests use them to craft certificates
// the CA would never issue (self-signed leaves, expired, not yet valid).
// Thread-safe: no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/tls/ossl.h"
#include "gossync/status.h"

namespace gossync::tls {

// A fresh ECDSA P-256 key (see ca.h for why P-256).
Result<PkeyPtr> GenerateKey();

struct CertSpec {
  std::string common_name;             // subject CN
  std::vector<std::string> dns_names;  // subjectAltName DNS entries; none: no SAN
  bool is_ca = false;                  // CA: CA:TRUE,pathlen:0 + keyCertSign,cRLSign.
                                       // Leaf: CA:FALSE + digitalSignature + serverAuth,clientAuth.
  // Validity, in seconds relative to now. The default start is an hour back so
  // that a peer whose clock is a little behind does not see "not yet valid".
  int64_t not_before_s = -3600;
  int64_t not_after_s = 825LL * 86400;
};

// Signs a v3 certificate for `subject_key` with a random 128-bit serial and
// SHA-256. With issuer_cert == nullptr it is self-signed (issuer_key must then
// be subject_key). A leaf's notAfter is clamped to its issuer's notAfter.
// REQUIRES: subject_key, issuer_key non-null. The caller validates the names
// (they go into the OpenSSL extension syntax; a comma would add an entry).
Result<X509Ptr> BuildCertificate(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer_cert,
                                 EVP_PKEY* issuer_key);

Result<std::string> CertToPem(X509* cert);
// Unencrypted PKCS#8 PEM: the file's mode (0600) is the protection.
Result<std::string> KeyToPem(EVP_PKEY* key);

// Reading PEM files. Errors name the file.
Result<X509Ptr> ReadCertFile(const std::string& path);
// Every certificate in the file, in order; at least one.
Result<std::vector<X509Ptr>> ReadCertChainFile(const std::string& path);
Result<PkeyPtr> ReadKeyFile(const std::string& path);

// "2034-05-01 12:00:00 UTC" (or "?" if unreadable).
std::string TimeText(const ASN1_TIME* t);

}  // namespace gossync::tls
