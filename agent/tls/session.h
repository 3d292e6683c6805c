// A TLS 1.3 session that only transforms bytes (STYLE.md: "TLS is a transport
// that transforms buffers"): ciphertext in from the network, plaintext out to
// the protocol, and back. No sockets, no clock, no threads: the io layer moves
// the bytes, the repair core reads the plaintext.
//
// Driving it (the io layer, on each event):
//   socket readable:  FeedCiphertext(bytes); then ReadPlaintext until it returns 0;
//                     then send TakeCiphertext() (handshake replies, alerts).
//   protocol output:  WritePlaintext(frame); send TakeCiphertext().
//   closing:          Shutdown(); send TakeCiphertext(); close the socket.
// After any error the session is dead: every call returns the same Status,
// but TakeCiphertext may still hold an alert worth sending before closing.
//
// Identity: the client checks that the server's certificate names
// `expected_server_name` during the handshake (the server sees a failed
// handshake, with a bad-certificate alert). The server learns the client's name
// from its certificate (peer_name()) and checks the name the client claims in
// its hello with CheckClaimedName. Pins configured in the SSL_CTX
// (context.h) are enforced during the handshake on both sides.
//
// Buffering is bounded: at most kMaxPendingInput bytes of ciphertext fed and
// not yet consumed, and output is refused once kMaxPendingOutput bytes wait
// in TakeCiphertext (so at most that plus one kMaxPlaintextWrite and its TLS
// overhead).
//
// Thread-compatible: one thread at a time (the loop thread). Movable.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "gossync/status.h"

namespace gossync::tls {

class TlsSession {
 public:
  static constexpr size_t kMaxPendingInput = 1 << 20;
  static constexpr size_t kMaxPendingOutput = 1 << 20;
  static constexpr size_t kMaxPlaintextWrite = 1 << 20;

  // A client session; its ClientHello is ready in TakeCiphertext() at once.
  // REQUIRES: ctx from MakeContext(role kClient) (or verifying peers itself).
  // The session takes its own reference on ctx.
  // InvalidArgument if expected_server_name is not a valid node name.
  static Result<TlsSession> Client(SSL_CTX* ctx, std::string_view expected_server_name);
  // A server session. InvalidArgument unless ctx demands a client certificate
  // (MakeContext with role kServer).
  static Result<TlsSession> Server(SSL_CTX* ctx);

  TlsSession(TlsSession&&) noexcept;
  TlsSession& operator=(TlsSession&&) noexcept;
  ~TlsSession();

  // Bytes received from the peer. Advances the handshake if it is not done.
  // LimitExceeded (nothing consumed) if that would leave more than
  // kMaxPendingInput bytes unconsumed: read plaintext first. A handshake
  // failure returns PermissionDenied (either side refused the other's
  // certificate or identity) or Corruption (anything else: not TLS, TLS 1.2),
  // with OpenSSL's reason, e.g. "TLS handshake failed: certificate verify
  // failed: unable to get local issuer certificate".
  Status FeedCiphertext(std::span<const uint8_t> bytes);
  Status FeedCiphertext(std::string_view bytes);

  // Bytes to send to the peer, in order; empty if none. Never fails.
  std::string TakeCiphertext();
  size_t pending_ciphertext() const;

  // Encrypts all of `bytes` or none of it. Unavailable (retry later) before
  // the handshake is done or while kMaxPendingOutput bytes wait to be taken;
  // InvalidArgument above kMaxPlaintextWrite; Aborted after Shutdown().
  Status WritePlaintext(std::span<const uint8_t> bytes);
  Status WritePlaintext(std::string_view bytes);

  // Decrypted bytes into `buffer`; 0 when none is available now (feed more
  // ciphertext) or the peer has closed (peer_closed()). Errors (e.g. an alert
  // from a peer that refused our certificate after the TLS 1.3 client
  // considered the handshake done) kill the session.
  Result<size_t> ReadPlaintext(std::span<uint8_t> buffer);

  bool handshake_done() const;
  // The peer sent close_notify; no more plaintext will come.
  bool peer_closed() const;
  // The verified peer's node name (certificate SAN DNS, else CN); empty until
  // handshake_done().
  const std::string& peer_name() const;
  // The peer's claimed name (from its hello) against its certificate and pins:
  // see CheckPeerIdentity in context.h. REQUIRES: handshake_done().
  Status CheckClaimedName(std::string_view claimed_name) const;

  // Queues close_notify (send TakeCiphertext() afterwards). Idempotent. Before
  // the handshake is done there is nothing to close politely: just Ok.
  Status Shutdown();

  // OK, or the error that ended the session.
  const Status& error() const;

  // For diagnostics (cipher, version). Owned by the session.
  SSL* ssl() const;

 private:
  struct State;
  explicit TlsSession(std::unique_ptr<State> state);
  Status Init();  // memory BIOs and the identity expectation
  std::unique_ptr<State> s_;
};

}  // namespace gossync::tls
