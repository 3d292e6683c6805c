#include "agent/core/entry.h"
#include "agent/tls/session.h"

#include <openssl/err.h>

#include <algorithm>

#include "agent/tls/context.h"
#include "agent/tls/ossl.h"

namespace gossync::tls {
namespace {

// Errors that mean "I do not accept who you are" (locally, or in an alert
// from the peer) rather than "these bytes are not TLS".
bool IsIdentityRefusal(unsigned long code) {
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return false;
  int reason = ERR_GET_REASON(code);
  switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return true;
    default:
      break;
  }
  // A received alert is reported as reason SSL_AD_REASON_OFFSET + alert.
  switch (reason - SSL_AD_REASON_OFFSET) {
    case SSL3_AD_BAD_CERTIFICATE:
    case SSL3_AD_UNSUPPORTED_CERTIFICATE:
    case SSL3_AD_CERTIFICATE_REVOKED:
    case SSL3_AD_CERTIFICATE_EXPIRED:
    case SSL3_AD_CERTIFICATE_UNKNOWN:
    case TLS1_AD_UNKNOWN_CA:
    case TLS1_AD_ACCESS_DENIED:
    case TLS13_AD_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// Heap-allocated so that the PeerExpectation handed to OpenSSL (ex_data) keeps
// its address when the session moves.
struct TlsSession::State {
  SslPtr ssl;
  BIO* rbio = nullptr;  // owned by ssl: ciphertext from the peer
  BIO* wbio = nullptr;  // owned by ssl: ciphertext for the peer
  PeerExpectation expectation;
  bool is_client = false;
  bool done = false;
  bool peer_closed = false;
  bool shutdown = false;
  std::string peer_name;
  Status error;

  const Status& Fail(Status s) {
    if (error.ok()) error = std::move(s);
    return error;
  }

  // OpenSSL's reasons after a failed call, with the certificate verification
  // result (or gossync's own identity check) spelled out. PermissionDenied
  // when either side refused the other's identity, Corruption for the rest.
  Status Failure(int ssl_error, std::string_view during) {
    std::vector<unsigned long> codes;
    std::string errs = DrainOpensslErrors(&codes);
    long verify = SSL_get_verify_result(ssl.get());
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
      return Status::Aborted(std::string("peer closed the connection during ") +
                             std::string(during));
    }
    std::string m = "TLS " + std::string(during) + " failed";
    if (!errs.empty()) m += ": " + errs;
    if (!expectation.failure.empty()) {
      m += ": " + expectation.failure;
      return Status::PermissionDenied(std::move(m));
    }
    if (verify != X509_V_OK) {
      m += ": ";
      m += X509_verify_cert_error_string(verify);
      return Status::PermissionDenied(std::move(m));
    }
    if (errs.empty()) m += " (SSL error " + std::to_string(ssl_error) + ")";
    for (unsigned long code : codes) {
      if (IsIdentityRefusal(code)) return Status::PermissionDenied(std::move(m));
    }
    return Status::Corruption(std::move(m));
  }

  Status OnHandshakeDone() {
    done = true;
    auto name = PeerName(ssl.get());
    if (!name.ok()) return Fail(name.status());
    if (is_client && *name != expectation.expected_name) {
      // The verify callback already checked this; a second look costs nothing.
      return Fail(Status::PermissionDenied("peer certificate is for '" + *name + "', expected '" +
                                           expectation.expected_name + "'"));
    }
    peer_name = std::move(*name);
    return Status::Ok();
  }

  Status Advance() {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl.get());
    if (rc == 1) return OnHandshakeDone();
    int e = SSL_get_error(ssl.get(), rc);
    if (e == SSL_ERROR_WANT_READ) return Status::Ok();
    return Fail(Failure(e, "handshake"));
  }
};

namespace {

Result<SslPtr> NewSsl(SSL_CTX* ctx) {
  GOSSYNC_CHECK(ctx != nullptr);
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return OpensslError(Code::kInternal, "SSL_new");
  return ssl;
}

}  // namespace

TlsSession::TlsSession(std::unique_ptr<State> state) : s_(std::move(state)) {}
TlsSession::TlsSession(TlsSession&&) noexcept = default;
TlsSession& TlsSession::operator=(TlsSession&&) noexcept = default;
TlsSession::~TlsSession() = default;

Result<TlsSession> TlsSession::Client(SSL_CTX* ctx, std::string_view expected_server_name) {
  if (!core::IsValidNodeName(expected_server_name)) {
    return Status::InvalidArgument("expected server name '" +
                                   std::string(expected_server_name.substr(0, 64)) +
                                   "' is not a valid node name");
  }
  if ((SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) == 0) {
    return Status::InvalidArgument("TLS client context does not verify the server");
  }
  auto st = std::make_unique<State>();
  auto ssl = NewSsl(ctx);
  if (!ssl.ok()) return ssl.status();
  st->ssl = std::move(*ssl);
  st->is_client = true;
  st->expectation.expected_name = std::string(expected_server_name);
  TlsSession session(std::move(st));
  GOSSYNC_RETURN_IF_ERROR(session.Init());
  SSL_set_connect_state(session.s_->ssl.get());
  // Produce the ClientHello now so the caller can send it.
  Status s = session.s_->Advance();
  if (!s.ok()) return s;
  return session;
}

Result<TlsSession> TlsSession::Server(SSL_CTX* ctx) {
  int mode = SSL_CTX_get_verify_mode(ctx);
  if ((mode & SSL_VERIFY_PEER) == 0 || (mode & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) == 0) {
    return Status::InvalidArgument("TLS server context does not require a client certificate");
  }
  auto st = std::make_unique<State>();
  auto ssl = NewSsl(ctx);
  if (!ssl.ok()) return ssl.status();
  st->ssl = std::move(*ssl);
  TlsSession session(std::move(st));
  GOSSYNC_RETURN_IF_ERROR(session.Init());
  SSL_set_accept_state(session.s_->ssl.get());
  return session;
}

Status TlsSession::Init() {
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  if (rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    return OpensslError(Code::kInternal, "BIO_new");
  }
  // An empty read BIO means "no data yet" (retry), not end of stream.
  BIO_set_mem_eof_return(rbio, -1);
  SSL_set_bio(s_->ssl.get(), rbio, wbio);  // the SSL owns both now
  s_->rbio = rbio;
  s_->wbio = wbio;
  AttachPeerExpectation(s_->ssl.get(), &s_->expectation);
  return Status::Ok();
}

Status TlsSession::FeedCiphertext(std::span<const uint8_t> bytes) {
  if (!s_->error.ok()) return s_->error;
  size_t pending = BIO_ctrl_pending(s_->rbio);
  if (bytes.size() > kMaxPendingInput - std::min(pending, kMaxPendingInput)) {
    return Status::LimitExceeded("TLS input buffer full (" + std::to_string(pending) +
                                 " bytes unread): read plaintext before feeding more");
  }
  if (!bytes.empty()) {
    size_t written = 0;
    if (BIO_write_ex(s_->rbio, bytes.data(), bytes.size(), &written) != 1 ||
        written != bytes.size()) {
      return s_->Fail(OpensslError(Code::kInternal, "buffer TLS input"));
    }
  }
  if (!s_->done) return s_->Advance();
  return Status::Ok();
}

Status TlsSession::FeedCiphertext(std::string_view bytes) {
  return FeedCiphertext(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

std::string TlsSession::TakeCiphertext() {
  std::string out(BIO_ctrl_pending(s_->wbio), '\0');
  if (out.empty()) return out;
  size_t got = 0;
  if (BIO_read_ex(s_->wbio, out.data(), out.size(), &got) != 1) got = 0;
  out.resize(got);
  return out;
}

size_t TlsSession::pending_ciphertext() const { return BIO_ctrl_pending(s_->wbio); }

Status TlsSession::WritePlaintext(std::span<const uint8_t> bytes) {
  if (!s_->error.ok()) return s_->error;
  if (s_->shutdown) return Status::Aborted("TLS session is shut down");
  if (!s_->done) return Status::Unavailable("TLS handshake not finished");
  if (bytes.size() > kMaxPlaintextWrite) {
    return Status::InvalidArgument("TLS write of " + std::to_string(bytes.size()) +
                                   " bytes exceeds " + std::to_string(kMaxPlaintextWrite));
  }
  if (pending_ciphertext() >= kMaxPendingOutput) {
    return Status::Unavailable("TLS output buffer full: send TakeCiphertext() first");
  }
  if (bytes.empty()) return Status::Ok();
  ERR_clear_error();
  size_t written = 0;
  int rc = SSL_write_ex(s_->ssl.get(), bytes.data(), bytes.size(), &written);
  if (rc != 1) return s_->Fail(s_->Failure(SSL_get_error(s_->ssl.get(), rc), "write"));
  // Without SSL_MODE_ENABLE_PARTIAL_WRITE and with a memory BIO that always
  // accepts, OpenSSL writes everything or fails.
  GOSSYNC_CHECK(written == bytes.size());
  return Status::Ok();
}

Status TlsSession::WritePlaintext(std::string_view bytes) {
  return WritePlaintext(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Result<size_t> TlsSession::ReadPlaintext(std::span<uint8_t> buffer) {
  if (!s_->error.ok()) return s_->error;
  if (!s_->done || s_->peer_closed || buffer.empty()) return size_t{0};
  ERR_clear_error();
  size_t n = 0;
  int rc = SSL_read_ex(s_->ssl.get(), buffer.data(), buffer.size(), &n);
  if (rc == 1) return n;
  int e = SSL_get_error(s_->ssl.get(), rc);
  if (e == SSL_ERROR_WANT_READ) return size_t{0};
  if (e == SSL_ERROR_ZERO_RETURN) {
    s_->peer_closed = true;
    return size_t{0};
  }
  return s_->Fail(s_->Failure(e, "read"));
}

bool TlsSession::handshake_done() const { return s_->done && s_->error.ok(); }
bool TlsSession::peer_closed() const { return s_->peer_closed; }
const std::string& TlsSession::peer_name() const { return s_->peer_name; }

Status TlsSession::CheckClaimedName(std::string_view claimed_name) const {
  if (!s_->done) return Status::Unavailable("TLS handshake not finished");
  return CheckPeerIdentity(s_->ssl.get(), claimed_name);
}

Status TlsSession::Shutdown() {
  if (!s_->error.ok()) return s_->error;
  if (s_->shutdown) return Status::Ok();
  s_->shutdown = true;
  if (!s_->done) return Status::Ok();
  ERR_clear_error();
  int rc = SSL_shutdown(s_->ssl.get());
  if (rc < 0) {
    int e = SSL_get_error(s_->ssl.get(), rc);
    if (e != SSL_ERROR_WANT_READ) return s_->Fail(s_->Failure(e, "shutdown"));
  }
  return Status::Ok();
}

const Status& TlsSession::error() const { return s_->error; }
SSL* TlsSession::ssl() const { return s_->ssl.get(); }

}  // namespace gossync::tls
