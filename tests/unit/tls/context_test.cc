#include "agent/tls/context.h"

#include <catch2/catch.hpp>

#include "agent/tls/ca.h"
#include "agent/tls/secret_file.h"
#include "agent/tls/x509_util.h"
#include "tests/unit/tls/tls_test_util.h"

namespace gossync::tls {
namespace {

using testing::TempDir;
using testing::TestCa;

// Writes a certificate for `node` signed by the CA in `ca_dir` with a
// validity window relative to now (seconds), for clock tests.
void WriteCertWithValidity(const std::string& ca_dir, const std::string& node, int64_t not_before_s,
                           int64_t not_after_s) {
  auto ca_cert = ReadCertFile(CaCertPath(ca_dir));
  auto ca_key = ReadKeyFile(CaKeyPath(ca_dir));
  REQUIRE(ca_cert.ok());
  REQUIRE(ca_key.ok());
  auto key = GenerateKey();
  REQUIRE(key.ok());
  CertSpec spec;
  spec.common_name = node;
  spec.dns_names = {node};
  spec.not_before_s = not_before_s;
  spec.not_after_s = not_after_s;
  auto cert = BuildCertificate(spec, key->get(), ca_cert->get(), ca_key->get());
  REQUIRE(cert.ok());
  REQUIRE(WriteFileAtomic(NodeCertPath(ca_dir, node), *CertToPem(cert->get()), 0644,
                          Overwrite::kReplace)
              .ok());
  REQUIRE(
      WriteFileAtomic(NodeKeyPath(ca_dir, node), *KeyToPem(key->get()), 0600, Overwrite::kReplace)
          .ok());
}

TEST_CASE("Context: a node's certificate, key and CA load into a TLS 1.3-only context",
          "[tls][context]") {
  TestCa ca;
  for (Role role : {Role::kClient, Role::kServer}) {
    auto ctx = MakeContext(ca.Config("alpha", role));
    INFO(ctx.status().ToString());
    REQUIRE(ctx.ok());
    CHECK(SSL_CTX_get_min_proto_version(ctx->get()) == TLS1_3_VERSION);
    CHECK(SSL_CTX_get_max_proto_version(ctx->get()) == TLS1_3_VERSION);
    int mode = SSL_CTX_get_verify_mode(ctx->get());
    CHECK((mode & SSL_VERIFY_PEER) != 0);
    CHECK(((mode & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) != 0) == (role == Role::kServer));
    CHECK(*OwnName(ctx->get()) == "alpha");
    // The trust store holds exactly the cluster CA: no system roots.
    STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx->get()));
    CHECK(sk_X509_OBJECT_num(objs) == 1);
  }
}

TEST_CASE("Context: a key that does not match the certificate is an error naming the files",
          "[tls][context]") {
  TestCa ca;
  ca.Issue("alpha");
  ca.Issue("beta");
  TlsConfig config = ca.Config("alpha", Role::kServer);
  config.key = ca.key("beta");
  auto ctx = MakeContext(config);
  REQUIRE_FALSE(ctx.ok());
  CHECK(ctx.status().code() == Code::kInvalidArgument);
  CHECK_THAT(ctx.status().message(), Catch::Contains(ca.key("beta")));
  CHECK_THAT(ctx.status().message(), Catch::Contains(ca.cert("alpha")));
  CHECK_THAT(ctx.status().message(), Catch::Contains("does not match"));
}

TEST_CASE("Context: an expired certificate is reported with its date", "[tls][context]") {
  TestCa ca;
  WriteCertWithValidity(ca.dir(), "old", -10 * 86400, -86400);
  auto ctx = MakeContext(TlsConfig{ca.cert("old"), ca.key("old"), ca.ca(), Role::kClient, {}});
  REQUIRE_FALSE(ctx.ok());
  CHECK_THAT(ctx.status().message(), Catch::Contains("expired on 20"));
  CHECK_THAT(ctx.status().message(), Catch::Contains(ca.cert("old")));
}

TEST_CASE("Context: a certificate not yet valid is reported with its date", "[tls][context]") {
  TestCa ca;
  WriteCertWithValidity(ca.dir(), "future", 86400, 10 * 86400);
  auto ctx =
      MakeContext(TlsConfig{ca.cert("future"), ca.key("future"), ca.ca(), Role::kClient, {}});
  REQUIRE_FALSE(ctx.ok());
  CHECK_THAT(ctx.status().message(), Catch::Contains("not valid until 20"));
}

TEST_CASE("Context: a certificate from another CA fails at load", "[tls][context]") {
  TestCa ours, theirs;
  theirs.Issue("alpha");
  auto ctx = MakeContext(
      TlsConfig{theirs.cert("alpha"), theirs.key("alpha"), ours.ca(), Role::kServer, {}});
  REQUIRE_FALSE(ctx.ok());
  CHECK_THAT(ctx.status().message(), Catch::Contains("does not verify against CA"));
  CHECK_THAT(ctx.status().message(), Catch::Contains("unable to get local issuer certificate"));
}

TEST_CASE("Context: a CA file that holds a leaf certificate is refused", "[tls][context]") {
  TestCa ca;
  ca.Issue("alpha");
  auto ctx = MakeContext(
      TlsConfig{ca.cert("alpha"), ca.key("alpha"), ca.cert("alpha"), Role::kServer, {}});
  REQUIRE_FALSE(ctx.ok());
  CHECK_THAT(ctx.status().message(), Catch::Contains("is not a CA certificate"));
}

TEST_CASE("Context: a missing or garbled file is an error naming it", "[tls][context]") {
  TestCa ca;
  TlsConfig config = ca.Config("alpha", Role::kClient);
  config.ca = ca.dir() + "/nope.crt";
  auto r = MakeContext(config);
  CHECK_THAT(r.status().message(), Catch::Contains("nope.crt"));
  CHECK_THAT(r.status().message(), Catch::Contains("No such file"));

  TempDir dir;
  REQUIRE(WriteFileAtomic(dir / "junk.pem", "hello\n", 0600, Overwrite::kReplace).ok());
  config = ca.Config("alpha", Role::kClient);
  config.key = dir / "junk.pem";
  r = MakeContext(config);
  CHECK_THAT(r.status().message(), Catch::Contains("junk.pem"));
  config = ca.Config("alpha", Role::kClient);
  config.cert = dir / "junk.pem";
  r = MakeContext(config);
  CHECK_THAT(r.status().message(), Catch::Contains("junk.pem"));
}

TEST_CASE("Context: pins are normalised, and malformed pins are rejected", "[tls][context]") {
  TestCa ca;
  ca.Issue("beta");
  std::string fp = CertFingerprint(ReadCertFile(ca.cert("beta"))->get());
  std::string upper_colons;
  for (size_t i = 0; i < fp.size(); i += 2) {
    if (i > 0) upper_colons += ':';
    upper_colons += static_cast<char>(std::toupper(fp[i]));
    upper_colons += static_cast<char>(std::toupper(fp[i + 1]));
  }
  CHECK(*NormalizeFingerprint(upper_colons) == fp);
  CHECK(MakeContext(ca.Config("alpha", Role::kClient, {{"beta", upper_colons}})).ok());

  auto bad = MakeContext(ca.Config("alpha", Role::kClient, {{"beta", fp.substr(2)}}));
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("pin for 'beta'"));
  bad = MakeContext(ca.Config("alpha", Role::kClient, {{"beta", "zz" + fp.substr(2)}}));
  CHECK(bad.status().code() == Code::kInvalidArgument);
  bad = MakeContext(ca.Config("alpha", Role::kClient, {{"Beta!", fp}}));
  CHECK(bad.status().code() == Code::kInvalidArgument);
}

TEST_CASE("Context: CertFingerprint is the SHA-256 of the DER certificate", "[tls][context]") {
  TestCa ca;
  ca.Issue("alpha");
  auto cert = ReadCertFile(ca.cert("alpha"));
  REQUIRE(cert.ok());
  unsigned char* der = nullptr;
  int len = i2d_X509(cert->get(), &der);
  REQUIRE(len > 0);
  unsigned char md[32];
  unsigned int md_len = 0;
  REQUIRE(EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr) == 1);
  OPENSSL_free(der);
  CHECK(CertFingerprint(cert->get()) == HexLower({md, md_len}));
  CHECK(CertFingerprint(cert->get()).size() == 64);
}

TEST_CASE("Context: CertNodeName takes the DNS SAN, else the CN, and refuses ambiguity",
          "[tls][context]") {
  auto key = GenerateKey();
  REQUIRE(key.ok());
  auto make = [&](const std::string& cn, std::vector<std::string> dns) {
    CertSpec spec;
    spec.common_name = cn;
    spec.dns_names = std::move(dns);
    auto cert = BuildCertificate(spec, key->get(), nullptr, key->get());
    REQUIRE(cert.ok());
    return std::move(*cert);
  };
  CHECK(*CertNodeName(make("ignored-cn", {"alpha"}).get()) == "alpha");
  CHECK(*CertNodeName(make("beta", {}).get()) == "beta");
  auto two = CertNodeName(make("alpha", {"alpha", "beta"}).get());
  CHECK_FALSE(two.ok());
  CHECK_THAT(two.status().message(), Catch::Contains("2 DNS names"));
  auto bad = CertNodeName(make("x", {"Not.A.Node"}).get());
  CHECK_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("not a valid node name"));
  CHECK_FALSE(CertNodeName(make("has space", {}).get()).ok());
}

}  // namespace
}  // namespace gossync::tls
