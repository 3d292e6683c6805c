#include "agent/core/entry.h"
#include "agent/tls/context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "agent/tls/x509_util.h"

namespace gossync::tls {
namespace {

using Pins = std::map<std::string, std::string>;

// The chain is leaf <- cluster CA; one intermediate is tolerated for an
// operator who signs node certificates with a sub-CA. Anything longer is not
// a gossync chain. (OpenSSL counts intermediates: depth 1 allows leaf,
// one intermediate, trust anchor.)
constexpr int kMaxVerifyDepth = 1;

void FreePins(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<Pins*>(ptr);
}

// ex_data slots. Function-local statics: initialised once, thread-safely.
int PinsIndex() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreePins);
  return idx;
}
int ExpectationIndex() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

const Pins* GetPins(SSL_CTX* ctx) {
  return static_cast<const Pins*>(SSL_CTX_get_ex_data(ctx, PinsIndex()));
}

Status CheckPin(SSL_CTX* ctx, X509* leaf, const std::string& name) {
  const Pins* pins = GetPins(ctx);
  if (pins == nullptr) return Status::Ok();
  auto it = pins->find(name);
  if (it == pins->end()) return Status::Ok();
  std::string fp = CertFingerprint(leaf);
  if (fp != it->second) {
    return Status::PermissionDenied("certificate of '" + name + "' has SHA-256 fingerprint " + fp +
                                    ", but the pin for '" + name + "' is " + it->second);
  }
  return Status::Ok();
}

Status CheckLeaf(SSL_CTX* ctx, X509* leaf, const std::string& expected_name) {
  auto name = CertNodeName(leaf);
  if (!name.ok()) return name.status().Prefixed("peer certificate");
  if (!expected_name.empty() && *name != expected_name) {
    return Status::PermissionDenied("peer certificate is for '" + *name + "', expected '" +
                                    expected_name + "'");
  }
  return CheckPin(ctx, leaf, *name);
}

// Runs after OpenSSL's own check of each certificate of the chain. At the
// leaf (depth 0), with the chain already verified, it adds gossync's identity
// rules; failing here makes OpenSSL send a bad-certificate alert to the peer.
int VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx) {
  if (preverify_ok != 1) return 0;
  if (X509_STORE_CTX_get_error_depth(store_ctx) != 0) return 1;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  X509* leaf = X509_STORE_CTX_get_current_cert(store_ctx);
  if (ssl == nullptr || leaf == nullptr) return 0;
  auto* expectation = static_cast<PeerExpectation*>(SSL_get_ex_data(ssl, ExpectationIndex()));
  Status s = CheckLeaf(SSL_get_SSL_CTX(ssl), leaf,
                       expectation != nullptr ? expectation->expected_name : std::string());
  if (!s.ok()) {
    if (expectation != nullptr) expectation->failure = s.message();
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

Result<std::string> AsciiString(const ASN1_STRING* s, std::string_view what) {
  const unsigned char* data = ASN1_STRING_get0_data(s);
  int len = ASN1_STRING_length(s);
  if (data == nullptr || len < 0) return Status::InvalidArgument(std::string(what) + " is empty");
  std::string out(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
  if (!core::IsValidNodeName(out)) {
    // The name came from a peer: print only a bounded, printable rendering.
    std::string shown;
    for (char c : out.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    return Status::InvalidArgument(std::string(what) + " '" + shown + "' is not a valid node name");
  }
  return out;
}

Status CheckValidity(X509* cert, const std::string& path) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return Status::InvalidArgument("certificate " + path + " is not valid until " +
                                   TimeText(X509_get0_notBefore(cert)) +
                                   " (is this machine's clock right?)");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return Status::InvalidArgument("certificate " + path + " expired on " +
                                   TimeText(X509_get0_notAfter(cert)) +
                                   "; issue a new one with 'gossync ca issue'");
  }
  return Status::Ok();
}

}  // namespace

std::string CertFingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  GOSSYNC_CHECK(X509_digest(cert, EVP_sha256(), md, &len) == 1 && len == 32);
  return HexLower({md, len});
}

Result<std::string> NormalizeFingerprint(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ':') continue;
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return Status::InvalidArgument("fingerprint has a character that is not a hex digit");
    }
    out += c;
  }
  if (out.size() != 64) {
    return Status::InvalidArgument("a SHA-256 fingerprint has 64 hex digits, this has " +
                                   std::to_string(out.size()));
  }
  return out;
}

Result<std::string> CertNodeName(X509* cert) {
  if (cert == nullptr) return Status::InvalidArgument("no certificate");
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    const ASN1_IA5STRING* dns = nullptr;
    int count = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) {
        dns = gn->d.dNSName;
        ++count;
      }
    }
    Result<std::string> out = Status::InvalidArgument("unset");
    if (count > 1) {
      // A certificate for several names could claim to be any of them.
      out = Status::InvalidArgument("certificate has " + std::to_string(count) +
                                    " DNS names; a gossync node certificate names one node");
    } else if (count == 1) {
      out = AsciiString(dns, "certificate DNS name");
    }
    GENERAL_NAMES_free(sans);
    if (count > 0) return out;
  }
  ERR_clear_error();  // X509_get_ext_d2i may queue a "not found"
  X509_NAME* subject = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) return Status::InvalidArgument("certificate has neither a DNS name nor a CN");
  if (X509_NAME_get_index_by_NID(subject, NID_commonName, idx) >= 0) {
    return Status::InvalidArgument("certificate has several CNs and no DNS name");
  }
  return AsciiString(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)), "certificate CN");
}

Result<std::string> OwnName(SSL_CTX* ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return Status::InvalidArgument("context has no certificate");
  return CertNodeName(cert);
}

Result<std::string> PeerName(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return Status::PermissionDenied("peer presented no certificate");
  long v = SSL_get_verify_result(ssl);
  if (v != X509_V_OK) {
    return Status::PermissionDenied(std::string("peer certificate did not verify: ") +
                                    X509_verify_cert_error_string(v));
  }
  auto name = CertNodeName(peer);
  if (!name.ok()) return Status::PermissionDenied("peer certificate: " + name.status().message());
  return name;
}

Status CheckPeerIdentity(SSL* ssl, std::string_view claimed_name) {
  auto name = PeerName(ssl);
  if (!name.ok()) return name.status();
  if (*name != claimed_name) {
    std::string shown(claimed_name.substr(0, 64));
    for (char& c : shown) {
      if (c < 0x20 || c >= 0x7f) c = '?';
    }
    return Status::PermissionDenied("peer claims to be '" + shown +
                                    "' but its certificate is for '" + *name + "'");
  }
  return CheckPin(SSL_get_SSL_CTX(ssl), SSL_get0_peer_certificate(ssl), *name);
}

void AttachPeerExpectation(SSL* ssl, PeerExpectation* expectation) {
  GOSSYNC_CHECK(SSL_set_ex_data(ssl, ExpectationIndex(), expectation) == 1);
}

Result<SslCtxPtr> MakeContext(const TlsConfig& config) {
  ERR_clear_error();
  auto pins = std::make_unique<Pins>();
  for (const auto& [name, fp] : config.pins) {
    if (!core::IsValidNodeName(name)) {
      return Status::InvalidArgument("pin for '" + name + "': not a valid node name");
    }
    auto norm = NormalizeFingerprint(fp);
    if (!norm.ok()) return norm.status().Prefixed("pin for '" + name + "'");
    (*pins)[name] = *norm;
  }

  // Trust anchors: exactly the certificates of the CA file.
  auto anchors = ReadCertChainFile(config.ca);
  if (!anchors.ok()) return anchors.status().Prefixed("CA file");
  X509StorePtr store(X509_STORE_new());
  if (!store) return OpensslError(Code::kInternal, "X509_STORE_new");
  for (size_t i = 0; i < anchors->size(); ++i) {
    X509* ca = (*anchors)[i].get();
    if (X509_check_ca(ca) == 0) {
      return Status::InvalidArgument("CA file " + config.ca + ": certificate " +
                                     std::to_string(i + 1) + " is not a CA certificate");
    }
    if (X509_STORE_add_cert(store.get(), ca) != 1) {
      return OpensslError(Code::kInternal, "add CA certificate from " + config.ca);
    }
  }

  auto chain = ReadCertChainFile(config.cert);
  if (!chain.ok()) return chain.status().Prefixed("certificate file");
  X509* leaf = chain->front().get();
  auto key = ReadKeyFile(config.key);
  if (!key.ok()) return key.status().Prefixed("key file");
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument("key " + config.key + " does not match certificate " +
                                   config.cert);
  }
  GOSSYNC_RETURN_IF_ERROR(CheckValidity(leaf, config.cert));
  {
    auto own = CertNodeName(leaf);
    if (!own.ok()) return own.status().Prefixed("certificate " + config.cert);
  }

  // Verify our own certificate now, as a peer would: a wrong CA file or a
  // certificate without the right key usage is a start-up error, not a
  // stream of handshake failures later.
  {
    X509StoreCtxPtr vctx(X509_STORE_CTX_new());
    STACK_OF(X509)* untrusted = sk_X509_new_null();
    for (size_t i = 1; i < chain->size(); ++i) sk_X509_push(untrusted, (*chain)[i].get());
    bool ok = vctx && X509_STORE_CTX_init(vctx.get(), store.get(), leaf, untrusted) == 1;
    if (ok) {
      X509_STORE_CTX_set_purpose(vctx.get(), config.role == Role::kServer
                                                 ? X509_PURPOSE_SSL_SERVER
                                                 : X509_PURPOSE_SSL_CLIENT);
      ok = X509_verify_cert(vctx.get()) == 1;
    }
    int err = vctx ? X509_STORE_CTX_get_error(vctx.get()) : X509_V_ERR_UNSPECIFIED;
    sk_X509_free(untrusted);
    if (!ok) {
      ERR_clear_error();
      return Status::InvalidArgument("certificate " + config.cert + " does not verify against CA " +
                                     config.ca + ": " + X509_verify_cert_error_string(err));
    }
  }

  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return OpensslError(Code::kInternal, "SSL_CTX_new");
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
    return OpensslError(Code::kInternal, "restrict to TLS 1.3");
  }
  SSL_CTX_set_cert_store(ctx.get(), store.release());  // ctx owns it now
  if (SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    return OpensslError(Code::kInvalidArgument, "use certificate " + config.cert);
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i].get()) != 1) {
      return OpensslError(Code::kInvalidArgument, "use chain certificate from " + config.cert);
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key->get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return OpensslError(Code::kInvalidArgument,
                        "key " + config.key + " does not match certificate " + config.cert);
  }

  int mode = SSL_VERIFY_PEER;
  if (config.role == Role::kServer) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx.get(), mode, VerifyCallback);
  SSL_CTX_set_verify_depth(ctx.get(), kMaxVerifyDepth);
  // A peer's certificate is checked on every connection (pins can change on
  // reload): no tickets, no session cache, no resumption.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx.get(), 0);

  if (SSL_CTX_set_ex_data(ctx.get(), PinsIndex(), pins.get()) != 1) {
    return OpensslError(Code::kInternal, "attach pins");
  }
  pins.release();  // freed by FreePins with the context
  return ctx;
}

}  // namespace gossync::tls
