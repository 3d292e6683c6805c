#include "agent/tls/x509_util.h"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <ctime>

namespace gossync::tls {
namespace {

// PEM files the module reads are a certificate chain or one key: a few KiB.
constexpr size_t kMaxPemFile = 1 << 20;

using BnPtr = std::unique_ptr<BIGNUM, OsslDeleter<BN_free>>;

Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) {
    return OpensslError(Code::kInternal,
                        std::string("build extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpensslError(Code::kInternal, "add certificate extension");
  return Status::Ok();
}

Result<BioPtr> OpenPemFile(const std::string& path) {
  // Read through ReadSmallFile, not BIO_new_file, for a size bound and an
  // errno-based message naming the file.
  auto data = ReadSmallFile(path, kMaxPemFile);
  if (!data.ok()) return data.status();
  // A secure-memory BIO, and the copy cleansed: the file may hold a key.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  bool ok = bio && BIO_write(bio.get(), data->data(), static_cast<int>(data->size())) ==
                       static_cast<int>(data->size());
  OPENSSL_cleanse(data->data(), data->size());
  if (!ok) return OpensslError(Code::kInternal, "buffer " + path);
  return bio;
}

}  // namespace

Result<PkeyPtr> GenerateKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpensslError(Code::kInternal, "generate ECDSA P-256 key");
  return key;
}

Result<X509Ptr> BuildCertificate(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer_cert,
                                 EVP_PKEY* issuer_key) {
  GOSSYNC_CHECK(subject_key != nullptr && issuer_key != nullptr);
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpensslError(Code::kInternal, "X509_new");
  }

  // RFC 5280 allows up to 20 octets; 128 random bits make serials unique
  // without a database, and unpredictable.
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_is_zero(serial.get()) ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return OpensslError(Code::kInternal, "random certificate serial");
  }

  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(spec.not_before_s)) ==
          nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(spec.not_after_s)) ==
          nullptr) {
    return OpensslError(Code::kInternal, "set certificate validity");
  }
  if (issuer_cert != nullptr &&
      ASN1_TIME_compare(X509_get0_notAfter(cert.get()), X509_get0_notAfter(issuer_cert)) > 0) {
    // A certificate outliving its CA would fail verification at that point
    // anyway; saying so in the certificate is more honest.
    if (X509_set1_notAfter(cert.get(), X509_get0_notAfter(issuer_cert)) != 1) {
      return OpensslError(Code::kInternal, "clamp notAfter");
    }
  }

  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                 static_cast<int>(spec.common_name.size()), -1, 0) != 1) {
    return OpensslError(Code::kInvalidArgument,
                        "certificate common name '" + spec.common_name + "'");
  }
  X509_NAME* issuer_name = issuer_cert != nullptr ? X509_get_subject_name(issuer_cert) : subject;
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return OpensslError(Code::kInternal, "set issuer and key");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert != nullptr ? issuer_cert : cert.get(), cert.get(), nullptr,
                 nullptr, 0);
  if (spec.is_ca) {
    // pathlen:0: the cluster CA signs node certificates only, never another CA.
    GOSSYNC_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    GOSSYNC_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    GOSSYNC_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    GOSSYNC_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
    GOSSYNC_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth"));
  }
  if (!spec.dns_names.empty()) {
    std::string san;
    for (const auto& n : spec.dns_names) {
      if (!san.empty()) san += ",";
      san += "DNS:" + n;
    }
    GOSSYNC_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_alt_name, san));
  }
  GOSSYNC_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  if (issuer_cert != nullptr) {
    GOSSYNC_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  }

  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) {
    return OpensslError(Code::kInternal, "sign certificate");
  }
  return cert;
}

Result<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpensslError(Code::kInternal, "encode certificate");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpensslError(Code::kInternal, "encode private key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::vector<X509Ptr>> ReadCertChainFile(const std::string& path) {
  auto bio = OpenPemFile(path);
  if (!bio.ok()) return bio.status();
  std::vector<X509Ptr> certs;
  ERR_clear_error();
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  // The loop ends with a "no start line" error at end of input; anything else
  // is a damaged PEM block.
  unsigned long err = ERR_peek_last_error();
  if (err != 0 &&
      !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
    return OpensslError(Code::kCorruption, path + ": bad PEM certificate");
  }
  ERR_clear_error();
  if (certs.empty()) return Status::InvalidArgument(path + ": no PEM certificate in the file");
  return certs;
}

Result<X509Ptr> ReadCertFile(const std::string& path) {
  auto chain = ReadCertChainFile(path);
  if (!chain.ok()) return chain.status();
  return std::move(chain->front());
}

Result<PkeyPtr> ReadKeyFile(const std::string& path) {
  auto bio = OpenPemFile(path);
  if (!bio.ok()) return bio.status();
  ERR_clear_error();
  // A null password callback with no user data: an encrypted key fails here
  // instead of prompting on a terminal the daemon does not have.
  PkeyPtr key(PEM_read_bio_PrivateKey(
      bio->get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr));
  if (!key) return OpensslError(Code::kInvalidArgument, path + ": no usable PEM private key");
  return key;
}

std::string TimeText(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace gossync::tls
