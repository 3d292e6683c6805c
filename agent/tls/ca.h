// The cluster certificate authority: `gossync ca init` and `gossync ca issue`
// (DESIGN.md sections 4 and 7). An operator never needs openssl.
//
// Key type: ECDSA P-256 for the CA and for nodes. ecdsa_secp256r1_sha256 is a
// mandatory-to-implement TLS 1.3 signature scheme (RFC 8446 section 9.1), so
// every TLS 1.3 stack and OpenSSL 3 build (including its FIPS provider) takes
// it; Ed25519 certificates are optional in TLS 1.3 and unsupported by some
// peers and FIPS configurations. P-256 signing is fast and keys and
// certificates stay small.
//
// Files: DIR/ca.key and DIR/NODE.key are unencrypted PKCS#8 PEM, mode 0600;
// DIR/ca.crt and DIR/NODE.crt are PEM, mode 0644. Every file is written
// atomically (temp file + fsync + rename/link + directory fsync).
// Thread-compatible: two concurrent calls on the same DIR may both fail, but
// never leave a partial file.
#pragma once

#include <string>
#include <string_view>

#include "gossync/status.h"

namespace gossync::tls {

inline constexpr int kCaValidityDays = 3650;      // 10 years
inline constexpr int kDefaultNodeCertDays = 825;  // the CA/Browser Forum's old cap
inline constexpr int kMaxNodeCertDays = kCaValidityDays;

// What a call wrote, for the CLI to print.
struct IssuedFiles {
  std::string cert_path;
  std::string key_path;
  std::string common_name;  // the certificate's subject CN
  std::string fingerprint;  // SHA-256 of the DER certificate, lowercase hex (for pins)
  std::string not_after;    // "YYYY-MM-DD HH:MM:SS UTC"
};

std::string CaCertPath(const std::string& dir);                           // DIR/ca.crt
std::string CaKeyPath(const std::string& dir);                            // DIR/ca.key
std::string NodeCertPath(const std::string& dir, std::string_view node);  // DIR/NODE.crt
std::string NodeKeyPath(const std::string& dir, std::string_view node);   // DIR/NODE.key

// Creates DIR (mode 0700) if missing and writes a new self-signed CA:
// CN "gossync cluster CA <8 random hex digits>", basicConstraints critical
// CA:TRUE,pathlen:0, keyUsage critical keyCertSign,cRLSign, 10 years, random
// 128-bit serial. Without `force`, an existing DIR/ca.key or DIR/ca.crt is
// AlreadyExists (replacing the CA orphans every node certificate).
Result<IssuedFiles> InitCa(const std::string& dir, bool force = false);

// Writes DIR/NODE.key and DIR/NODE.crt signed by DIR/ca.key: CN=NODE,
// subjectAltName DNS:NODE, basicConstraints critical CA:FALSE, keyUsage
// critical digitalSignature, extendedKeyUsage serverAuth,clientAuth, valid for
// `days` (1..kMaxNodeCertDays, clamped to the CA's own expiry).
// Errors: InvalidArgument for a bad node name (1..63 bytes of [a-z0-9._-],
// starting with a letter or digit; "ca" is reserved: its files would be the
// CA's) or days; NotFound/IoError naming a missing or unreadable CA file;
// InvalidArgument if ca.key does not match ca.crt or ca.crt is not a CA or has
// expired; AlreadyExists if NODE.key or NODE.crt exists and !force.
Result<IssuedFiles> IssueNode(const std::string& dir, std::string_view node_name,
                              int days = kDefaultNodeCertDays, bool force = false);

}  // namespace gossync::tls
