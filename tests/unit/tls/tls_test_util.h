// Helpers for the tls unit tests: temp dirs, a test cluster CA with node
// certificates, raw SSL_CTXs for misbehaving peers, and pumping bytes
// between two TlsSessions in memory.
#pragma once

#include <openssl/ssl.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>

#include "agent/tls/ca.h"
#include "agent/tls/context.h"
#include "agent/tls/secret_file.h"
#include "agent/tls/session.h"
#include "agent/tls/x509_util.h"

namespace gossync::tls::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gossync-tls-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// A CA in its own temp dir, issuing node certificates on demand.
class TestCa {
 public:
  TestCa() { REQUIRE(InitCa(dir_.path()).ok()); }
  const std::string& dir() const { return dir_.path(); }
  std::string ca() const { return CaCertPath(dir_.path()); }
  std::string cert(const std::string& node) const { return NodeCertPath(dir_.path(), node); }
  std::string key(const std::string& node) const { return NodeKeyPath(dir_.path(), node); }
  void Issue(const std::string& node) {
    auto r = IssueNode(dir_.path(), node);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
  }
  TlsConfig Config(const std::string& node, Role role,
                   std::map<std::string, std::string> pins = {}) {
    if (!std::filesystem::exists(cert(node))) Issue(node);
    return TlsConfig{cert(node), key(node), ca(), role, std::move(pins)};
  }
  SslCtxPtr Context(const std::string& node, Role role,
                    std::map<std::string, std::string> pins = {}) {
    auto ctx = MakeContext(Config(node, role, std::move(pins)));
    INFO(ctx.status().ToString());
    REQUIRE(ctx.ok());
    return std::move(*ctx);
  }

 private:
  TempDir dir_;
};

// An SSL_CTX with none of MakeContext's load-time checks, for peers that
// misbehave: empty cert_path = no certificate. Trusts ca_path.
inline SslCtxPtr RawContext(const std::string& cert_path, const std::string& key_path,
                            const std::string& ca_path, bool server) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  REQUIRE(ctx);
  REQUIRE(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) == 1);
  REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), ca_path.c_str(), nullptr) == 1);
  if (!cert_path.empty()) {
    REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), cert_path.c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), key_path.c_str(), SSL_FILETYPE_PEM) == 1);
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                     nullptr);
  return ctx;
}

// Writes a self-signed leaf certificate naming `node` (not from any CA) and
// its key into dir; returns {cert, key} paths.
inline std::pair<std::string, std::string> WriteSelfSigned(const TempDir& dir,
                                                           const std::string& node) {
  auto key = GenerateKey();
  REQUIRE(key.ok());
  CertSpec spec;
  spec.common_name = node;
  spec.dns_names = {node};
  auto cert = BuildCertificate(spec, key->get(), nullptr, key->get());
  REQUIRE(cert.ok());
  std::string cert_path = dir / (node + "-self.crt");
  std::string key_path = dir / (node + "-self.key");
  REQUIRE(WriteFileAtomic(cert_path, *CertToPem(cert->get()), 0644, Overwrite::kReplace).ok());
  REQUIRE(WriteFileAtomic(key_path, *KeyToPem(key->get()), 0600, Overwrite::kReplace).ok());
  return {cert_path, key_path};
}

// Moves ciphertext between the two sessions until neither has any to send
// or one fails. Returns after at most `rounds` exchanges.
struct PumpResult {
  Status a;
  Status b;
};
inline PumpResult Pump(TlsSession& a, TlsSession& b, int rounds = 100) {
  PumpResult r;
  for (int i = 0; i < rounds; ++i) {
    std::string to_b = a.TakeCiphertext();
    std::string to_a = b.TakeCiphertext();
    if (to_b.empty() && to_a.empty()) break;
    if (!to_b.empty() && r.b.ok()) r.b = b.FeedCiphertext(to_b);
    if (!to_a.empty() && r.a.ok()) r.a = a.FeedCiphertext(to_a);
    // A session may accept ciphertext yet fail when reading it (a TLS 1.3
    // client learns of its rejection after its handshake is done).
    uint8_t buf[256];
    if (r.a.ok() && a.handshake_done()) {
      auto n = a.ReadPlaintext(buf);
      if (!n.ok()) r.a = n.status();
    }
    if (r.b.ok() && b.handshake_done()) {
      auto n = b.ReadPlaintext(buf);
      if (!n.ok()) r.b = n.status();
    }
  }
  return r;
}

}  // namespace gossync::tls::testing
