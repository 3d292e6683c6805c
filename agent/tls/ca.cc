#include "agent/core/entry.h"
#include "agent/tls/ca.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "agent/tls/context.h"
#include "agent/tls/ossl.h"
#include "agent/tls/secret_file.h"
#include "agent/tls/x509_util.h"

namespace gossync::tls {
namespace {

constexpr unsigned kKeyMode = 0600;
constexpr unsigned kCertMode = 0644;

std::string Join(const std::string& dir, std::string_view file) {
  std::string p = dir.empty() ? "." : dir;
  if (p.back() != '/') p += '/';
  p += file;
  return p;
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::symlink_status(path, ec));
}

// Writes the key, then the certificate. If the certificate cannot be written,
// a key this call created is removed again, so a failed call leaves no
// half-pair behind for the next run to trip over.
Result<IssuedFiles> WritePair(const std::string& key_path, const std::string& cert_path,
                              EVP_PKEY* key, X509* cert, bool force) {
  auto key_pem = KeyToPem(key);
  if (!key_pem.ok()) return key_pem.status();
  auto cert_pem = CertToPem(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  Overwrite mode = force ? Overwrite::kReplace : Overwrite::kRefuse;
  Status s = WriteFileAtomic(key_path, *key_pem, kKeyMode, mode);
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!s.ok()) return s;
  s = WriteFileAtomic(cert_path, *cert_pem, kCertMode, mode);
  if (!s.ok()) {
    if (!force) ::unlink(key_path.c_str());
    return s;
  }
  IssuedFiles out;
  out.cert_path = cert_path;
  out.key_path = key_path;
  X509_NAME* subject = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx >= 0) {
    ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    out.common_name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                           static_cast<size_t>(ASN1_STRING_length(cn)));
  }
  out.fingerprint = CertFingerprint(cert);
  out.not_after = TimeText(X509_get0_notAfter(cert));
  return out;
}

}  // namespace

std::string CaCertPath(const std::string& dir) { return Join(dir, "ca.crt"); }
std::string CaKeyPath(const std::string& dir) { return Join(dir, "ca.key"); }
std::string NodeCertPath(const std::string& dir, std::string_view node) {
  return Join(dir, std::string(node) + ".crt");
}
std::string NodeKeyPath(const std::string& dir, std::string_view node) {
  return Join(dir, std::string(node) + ".key");
}

Result<IssuedFiles> InitCa(const std::string& dir, bool force) {
  const std::string key_path = CaKeyPath(dir);
  const std::string cert_path = CaCertPath(dir);
  if (!force) {
    for (const auto& p : {key_path, cert_path}) {
      if (Exists(p)) {
        return Status::AlreadyExists(
            p +
            " already exists; refusing to replace the cluster CA (every node certificate "
            "is signed by it); use --force to replace it");
      }
    }
  }
  GOSSYNC_RETURN_IF_ERROR(EnsureDirectory(dir));

  unsigned char suffix[4];
  if (RAND_bytes(suffix, sizeof(suffix)) != 1) {
    return OpensslError(Code::kInternal, "random CA name");
  }
  auto key = GenerateKey();
  if (!key.ok()) return key.status();
  CertSpec spec;
  spec.common_name = "gossync cluster CA " + HexLower(suffix);
  spec.is_ca = true;
  spec.not_before_s = -3600;
  spec.not_after_s = int64_t{kCaValidityDays} * 86400;
  auto cert = BuildCertificate(spec, key->get(), nullptr, key->get());
  if (!cert.ok()) return cert.status();
  return WritePair(key_path, cert_path, key->get(), cert->get(), force);
}

Result<IssuedFiles> IssueNode(const std::string& dir, std::string_view node_name, int days,
                              bool force) {
  if (!core::IsValidNodeName(node_name)) {
    return Status::InvalidArgument(
        "invalid node name '" + std::string(node_name.substr(0, 80)) +
        "': use 1 to 63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit");
  }
  if (node_name == "ca") {
    return Status::InvalidArgument("node name 'ca' is reserved: its files would be the CA's");
  }
  if (days < 1 || days > kMaxNodeCertDays) {
    return Status::InvalidArgument("certificate validity must be 1 to " +
                                   std::to_string(kMaxNodeCertDays) + " days, not " +
                                   std::to_string(days));
  }
  const std::string key_path = NodeKeyPath(dir, node_name);
  const std::string cert_path = NodeCertPath(dir, node_name);
  if (!force) {
    for (const auto& p : {key_path, cert_path}) {
      if (Exists(p)) {
        return Status::AlreadyExists(p + " already exists; use --force to replace it");
      }
    }
  }

  const std::string ca_cert_path = CaCertPath(dir);
  const std::string ca_key_path = CaKeyPath(dir);
  auto ca_cert = ReadCertFile(ca_cert_path);
  if (!ca_cert.ok()) return ca_cert.status().Prefixed("CA certificate (run 'gossync ca init')");
  auto ca_key = ReadKeyFile(ca_key_path);
  if (!ca_key.ok()) return ca_key.status().Prefixed("CA key");
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument(ca_key_path + " does not match " + ca_cert_path);
  }
  if (X509_check_ca(ca_cert->get()) == 0) {
    return Status::InvalidArgument(ca_cert_path + " is not a CA certificate");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(ca_cert->get())) <= 0) {
    return Status::InvalidArgument(ca_cert_path + " expired on " +
                                   TimeText(X509_get0_notAfter(ca_cert->get())));
  }

  auto key = GenerateKey();
  if (!key.ok()) return key.status();
  CertSpec spec;
  spec.common_name = std::string(node_name);
  spec.dns_names = {std::string(node_name)};
  spec.is_ca = false;
  spec.not_before_s = -3600;
  spec.not_after_s = int64_t{days} * 86400;
  auto cert = BuildCertificate(spec, key->get(), ca_cert->get(), ca_key->get());
  if (!cert.ok()) return cert.status();
  return WritePair(key_path, cert_path, key->get(), cert->get(), force);
}

}  // namespace gossync::tls
