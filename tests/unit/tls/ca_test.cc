#include "agent/tls/ca.h"

#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "agent/tls/context.h"
#include "agent/tls/x509_util.h"
#include "tests/unit/tls/tls_test_util.h"

namespace gossync::tls {
namespace {

using testing::TempDir;

unsigned FileMode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// X509_verify_cert of `cert` against the single trust anchor `ca`, for a
// TLS purpose; returns the X509_V_* result.
int Verify(X509* cert, X509* ca, int purpose) {
  X509StorePtr store(X509_STORE_new());
  REQUIRE(X509_STORE_add_cert(store.get(), ca) == 1);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr) == 1);
  REQUIRE(X509_STORE_CTX_set_purpose(ctx.get(), purpose) == 1);
  int ok = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  if (ok == 1) REQUIRE(err == X509_V_OK);
  return err;
}

X509Ptr Load(const std::string& path) {
  auto c = ReadCertFile(path);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return std::move(*c);
}

bool ExtensionCritical(X509* cert, int nid) {
  int idx = X509_get_ext_by_NID(cert, nid, -1);
  REQUIRE(idx >= 0);
  return X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
}

int ValidityDays(X509* cert) {
  int days = 0, secs = 0;
  REQUIRE(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)) == 1);
  return days;
}

TEST_CASE("Ca: an issued certificate verifies against its CA for client and server use",
          "[tls][ca]") {
  TempDir dir;
  auto ca = InitCa(dir.path());
  REQUIRE(ca.ok());
  auto node = IssueNode(dir.path(), "alpha");
  INFO(node.status().ToString());
  REQUIRE(node.ok());
  CHECK(node->cert_path == dir / "alpha.crt");
  CHECK(node->key_path == dir / "alpha.key");
  CHECK(node->common_name == "alpha");

  X509Ptr ca_cert = Load(ca->cert_path);
  X509Ptr cert = Load(node->cert_path);
  CHECK(Verify(cert.get(), ca_cert.get(), X509_PURPOSE_SSL_SERVER) == X509_V_OK);
  CHECK(Verify(cert.get(), ca_cert.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
  CHECK(node->fingerprint == CertFingerprint(cert.get()));

  // The key file holds the certificate's key.
  auto key = ReadKeyFile(node->key_path);
  REQUIRE(key.ok());
  CHECK(X509_check_private_key(cert.get(), key->get()) == 1);
}

TEST_CASE("Ca: a second CA's certificates do not verify against the first", "[tls][ca]") {
  TempDir one, two;
  REQUIRE(InitCa(one.path()).ok());
  REQUIRE(InitCa(two.path()).ok());
  REQUIRE(IssueNode(two.path(), "alpha").ok());
  X509Ptr ca_one = Load(one / "ca.crt");
  X509Ptr ca_two = Load(two / "ca.crt");
  X509Ptr foreign = Load(two / "alpha.crt");
  CHECK(Verify(foreign.get(), ca_one.get(), X509_PURPOSE_SSL_CLIENT) ==
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  CHECK(Verify(foreign.get(), ca_two.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
  // The other CA itself is not trusted by the first either.
  CHECK(Verify(ca_two.get(), ca_one.get(), X509_PURPOSE_ANY) != X509_V_OK);
}

TEST_CASE("Ca: the node name is the certificate's CN and its only DNS SAN", "[tls][ca]") {
  TempDir dir;
  REQUIRE(InitCa(dir.path()).ok());
  REQUIRE(IssueNode(dir.path(), "web-1.eu_west").ok());
  X509Ptr cert = Load(dir / "web-1.eu_west.crt");

  X509_NAME* subject = X509_get_subject_name(cert.get());
  char cn[128] = {};
  REQUIRE(X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof(cn)) > 0);
  CHECK(std::string(cn) == "web-1.eu_west");

  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  REQUIRE(sans != nullptr);
  REQUIRE(sk_GENERAL_NAME_num(sans) == 1);
  const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, 0);
  REQUIRE(gn->type == GEN_DNS);
  std::string dns(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                  static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName)));
  GENERAL_NAMES_free(sans);
  CHECK(dns == "web-1.eu_west");
  CHECK(*CertNodeName(cert.get()) == "web-1.eu_west");
}

TEST_CASE("Ca: keys are written mode 0600 and certificates 0644", "[tls][ca]") {
  TempDir dir;
  std::string sub = dir / "nested/ca";  // created by InitCa
  REQUIRE(InitCa(sub).ok());
  REQUIRE(IssueNode(sub, "alpha").ok());
  CHECK(FileMode(sub + "/ca.key") == 0600);
  CHECK(FileMode(sub + "/alpha.key") == 0600);
  CHECK(FileMode(sub + "/ca.crt") == 0644);
  CHECK(FileMode(sub + "/alpha.crt") == 0644);
  CHECK(FileMode(sub) == 0700);
  // No temp files are left behind.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(sub)) {
    INFO(e.path());
    CHECK(e.path().string().find(".tmp.") == std::string::npos);
    ++files;
  }
  CHECK(files == 4);
}

TEST_CASE("Ca: the CA certificate is a 10-year CA with keyCertSign and a random 128-bit serial",
          "[tls][ca]") {
  TempDir one, two;
  auto a = InitCa(one.path());
  auto b = InitCa(two.path());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->common_name.rfind("gossync cluster CA ", 0) == 0);
  CHECK(a->common_name.size() == std::string("gossync cluster CA ").size() + 8);
  CHECK(a->common_name != b->common_name);

  X509Ptr ca = Load(a->cert_path);
  CHECK(X509_check_ca(ca.get()) == 1);
  CHECK((X509_get_extension_flags(ca.get()) & EXFLAG_SS) != 0);  // self-signed
  CHECK(ExtensionCritical(ca.get(), NID_basic_constraints));
  CHECK(ExtensionCritical(ca.get(), NID_key_usage));
  CHECK((X509_get_key_usage(ca.get()) & KU_KEY_CERT_SIGN) != 0);
  CHECK((X509_get_key_usage(ca.get()) & KU_DIGITAL_SIGNATURE) == 0);
  // 10 years plus the hour of backdating.
  CHECK(ValidityDays(ca.get()) == kCaValidityDays);

  BIGNUM* serial_a = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ca.get()), nullptr);
  X509Ptr ca_b = Load(b->cert_path);
  BIGNUM* serial_b = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ca_b.get()), nullptr);
  CHECK(BN_num_bits(serial_a) <= 128);
  CHECK(BN_num_bits(serial_a) > 64);  // fails with probability 2^-64
  CHECK(BN_cmp(serial_a, serial_b) != 0);
  BN_free(serial_a);
  BN_free(serial_b);

  auto key = ReadKeyFile(a->key_path);
  REQUIRE(key.ok());
  CHECK(EVP_PKEY_is_a(key->get(), "EC"));
}

TEST_CASE("Ca: a node certificate is a leaf for digitalSignature, serverAuth and clientAuth",
          "[tls][ca]") {
  TempDir dir;
  REQUIRE(InitCa(dir.path()).ok());
  auto node = IssueNode(dir.path(), "alpha", 30);
  REQUIRE(node.ok());
  X509Ptr cert = Load(node->cert_path);
  CHECK(X509_check_ca(cert.get()) == 0);
  CHECK(ExtensionCritical(cert.get(), NID_basic_constraints));
  CHECK(X509_get_key_usage(cert.get()) == KU_DIGITAL_SIGNATURE);
  CHECK(X509_get_extended_key_usage(cert.get()) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
  CHECK(ValidityDays(cert.get()) == 30);

  auto def = IssueNode(dir.path(), "beta");
  REQUIRE(def.ok());
  CHECK(ValidityDays(Load(def->cert_path).get()) == kDefaultNodeCertDays);
}

TEST_CASE("Ca: init refuses to replace an existing CA unless forced", "[tls][ca]") {
  TempDir dir;
  auto first = InitCa(dir.path());
  REQUIRE(first.ok());
  auto again = InitCa(dir.path());
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == Code::kAlreadyExists);
  CHECK_THAT(again.status().message(), Catch::Contains("ca.key"));
  CHECK(Load(dir / "ca.crt") != nullptr);
  CHECK(CertFingerprint(Load(dir / "ca.crt").get()) == first->fingerprint);

  auto forced = InitCa(dir.path(), /*force=*/true);
  REQUIRE(forced.ok());
  CHECK(forced->fingerprint != first->fingerprint);
  CHECK(CertFingerprint(Load(dir / "ca.crt").get()) == forced->fingerprint);
  CHECK(FileMode(dir / "ca.key") == 0600);
}

TEST_CASE("Ca: issue refuses to replace a node's files unless forced", "[tls][ca]") {
  TempDir dir;
  REQUIRE(InitCa(dir.path()).ok());
  auto first = IssueNode(dir.path(), "alpha");
  REQUIRE(first.ok());
  auto again = IssueNode(dir.path(), "alpha");
  CHECK(again.status().code() == Code::kAlreadyExists);
  auto forced = IssueNode(dir.path(), "alpha", kDefaultNodeCertDays, /*force=*/true);
  REQUIRE(forced.ok());
  CHECK(forced->fingerprint != first->fingerprint);
}

TEST_CASE("Ca: issue rejects bad node names and validity periods", "[tls][ca]") {
  TempDir dir;
  REQUIRE(InitCa(dir.path()).ok());
  for (const char* bad : {"", "Alpha", "-alpha", ".alpha", "a b", "a,DNS:evil", "../x", "a/b", "ca",
                          "alpha\n", "caf\xc3\xa9"}) {
    INFO("name: " << bad);
    auto r = IssueNode(dir.path(), bad);
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  CHECK(IssueNode(dir.path(), std::string(64, 'a')).status().code() == Code::kInvalidArgument);
  CHECK(IssueNode(dir.path(), std::string(63, 'a')).ok());
  CHECK(IssueNode(dir.path(), "0node").ok());
  CHECK(IssueNode(dir.path(), "x", 0).status().code() == Code::kInvalidArgument);
  CHECK(IssueNode(dir.path(), "x", kMaxNodeCertDays + 1).status().code() == Code::kInvalidArgument);
  // Nothing but the CA and the two good nodes was written.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  CHECK(files == 6);
}

TEST_CASE("Ca: issue without a CA names the missing file", "[tls][ca]") {
  TempDir dir;
  auto r = IssueNode(dir.path(), "alpha");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("ca.crt"));
  CHECK_THAT(r.status().message(), Catch::Contains("No such file"));
  CHECK_FALSE(std::filesystem::exists(dir / "alpha.key"));
}

TEST_CASE("Ca: issue refuses a CA key that does not match the CA certificate", "[tls][ca]") {
  TempDir one, two;
  REQUIRE(InitCa(one.path()).ok());
  REQUIRE(InitCa(two.path()).ok());
  std::filesystem::copy_file(two / "ca.key", one / "ca.key",
                             std::filesystem::copy_options::overwrite_existing);
  auto r = IssueNode(one.path(), "alpha");
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("does not match"));
}

}  // namespace
}  // namespace gossync::tls
