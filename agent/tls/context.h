// SSL_CTX set-up for the repair channel (DESIGN.md section 4): mutual TLS 1.3
// with the cluster CA as the only trust anchor, and the identity rules
// (certificate name == claimed node name, optional fingerprint pins).
//
// Thread-safety: MakeContext and the free functions are thread-safe. A
// finished SSL_CTX may be shared by sessions on several threads (OpenSSL
// locks it); the daemon builds a new one on SIGHUP and lets old sessions keep
// theirs (each SSL holds a reference).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <map>
#include <string>
#include <string_view>

#include "agent/tls/ossl.h"
#include "gossync/status.h"

namespace gossync::tls {

enum class Role { kClient, kServer };

struct TlsConfig {
  std::string cert;  // path: PEM, this node's certificate first, then any intermediates
  std::string key;   // path: PEM private key of that certificate (unencrypted)
  std::string ca;    // path: PEM cluster CA certificate(s), the only trust anchors
  Role role = Role::kClient;
  // Node name -> SHA-256 fingerprint of that node's DER certificate: 64 hex
  // digits, any case, ':' separators allowed ("openssl x509 -fingerprint").
  // A peer whose certificate names a pinned node must match the pin.
  std::map<std::string, std::string> pins;
};

// Builds the context: TLS 1.3 only (min = max = 1.3); the peer must present a
// certificate that chains to `ca` (client: SSL_VERIFY_PEER; server: also
// SSL_VERIFY_FAIL_IF_NO_PEER_CERT); no system trust store; no session tickets
// or resumption (every connection does full certificate verification).
// Checked at load, with errors naming the file: each file readable and PEM;
// the key matches the certificate; the certificate is within its validity
// period (expired / not yet valid, with the date); it chains to `ca` and is
// fit for the role; its name is a valid node name; every pin is well formed.
// The verify callback also enforces the pins during the handshake.
Result<SslCtxPtr> MakeContext(const TlsConfig& config);

// The node name a certificate carries: its subjectAltName DNS entry (exactly
// one), or, with no DNS SAN, its subject CN (exactly one). InvalidArgument if
// neither or several exist or the name is not a valid node name.
Result<std::string> CertNodeName(X509* cert);

// The name in a context's own certificate (to check against config `node`).
Result<std::string> OwnName(SSL_CTX* ctx);

// The node name of the peer's certificate, once the handshake has verified it.
// PermissionDenied if there is no peer certificate or it did not verify.
Result<std::string> PeerName(SSL* ssl);

// SHA-256 of the DER certificate, 64 lowercase hex digits.
std::string CertFingerprint(X509* cert);

// "AB:CD:..." or "abcd..." -> 64 lowercase hex digits; InvalidArgument otherwise.
Result<std::string> NormalizeFingerprint(std::string_view text);

// The check to run when the peer says who it is (hello, gossip): the verified
// certificate's name must equal `claimed_name`, and if the context pins that
// name, the certificate's fingerprint must match. PermissionDenied naming
// both names otherwise.
Status CheckPeerIdentity(SSL* ssl, std::string_view claimed_name);

// Per-connection identity expectation read by MakeContext's verify callback.
// `expected_name` non-empty: the peer's certificate must carry that name
// (the client's check of the server). On a failed check the callback writes
// the reason to `failure` and the handshake fails with it.
// Owned by the caller (TlsSession); must outlive the SSL or be detached.
struct PeerExpectation {
  std::string expected_name;
  std::string failure;
};
void AttachPeerExpectation(SSL* ssl, PeerExpectation* expectation);

}  // namespace gossync::tls
