#include "agent/tls/keyring.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "agent/tls/ossl.h"
#include "agent/tls/secret_file.h"

namespace gossync::tls {
namespace {

constexpr std::string_view kKeyIdLabel = "gossync-key-id";
constexpr size_t kBase64KeyChars = 44;  // 4 * ceil(32 / 3)

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

std::string EncodeKey(const GossipKeyBytes& key) {
  unsigned char out[kBase64KeyChars + 1];
  int n = EVP_EncodeBlock(out, key.data(), static_cast<int>(key.size()));
  GOSSYNC_CHECK(n == static_cast<int>(kBase64KeyChars));
  std::string s(reinterpret_cast<char*>(out), kBase64KeyChars);
  OPENSSL_cleanse(out, sizeof(out));
  return s;
}

// Strict: exactly 43 base64 characters and one '=', and canonical (the
// unused low bits zero), so a key has exactly one spelling.
Status DecodeKey(std::string_view text, GossipKeyBytes* key) {
  if (text.size() != kBase64KeyChars) {
    return Status::InvalidArgument("not a key: expected 44 base64 characters (32 bytes), got " +
                                   std::to_string(text.size()));
  }
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (!IsBase64Char(text[i])) {
      return Status::InvalidArgument("not a key: character " + std::to_string(i + 1) +
                                     " is not base64");
    }
  }
  if (text.back() != '=') {
    return Status::InvalidArgument("not a key: a 32-byte key in base64 ends with '='");
  }
  unsigned char out[33];
  int n = EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n != 33) {
    OPENSSL_cleanse(out, sizeof(out));
    return Status::InvalidArgument("not a key: bad base64");
  }
  std::copy(out, out + kGossipKeySize, key->begin());
  OPENSSL_cleanse(out, sizeof(out));
  std::string again = EncodeKey(*key);
  bool canonical = again == text;
  OPENSSL_cleanse(again.data(), again.size());
  if (!canonical) return Status::InvalidArgument("not a key: non-canonical base64");
  return Status::Ok();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

KeyId ComputeKeyId(const GossipKeyBytes& key) {
  unsigned char buf[kKeyIdLabel.size() + kGossipKeySize];
  std::copy(kKeyIdLabel.begin(), kKeyIdLabel.end(), buf);
  std::copy(key.begin(), key.end(), buf + kKeyIdLabel.size());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  GOSSYNC_CHECK(EVP_Digest(buf, sizeof(buf), md, &len, EVP_sha256(), nullptr) == 1);
  OPENSSL_cleanse(buf, sizeof(buf));
  KeyId id;
  std::copy(md, md + kKeyIdSize, id.begin());
  return id;
}

std::string KeyIdHex(const KeyId& id) { return HexLower(id); }

Result<Keyring> Keyring::FromKeys(std::span<const GossipKeyBytes> keys) {
  if (keys.empty()) return Status::InvalidArgument("keyring has no key");
  if (keys.size() > kMaxKeyringKeys) {
    return Status::InvalidArgument("keyring has " + std::to_string(keys.size()) +
                                   " keys; at most " + std::to_string(kMaxKeyringKeys));
  }
  Keyring ring;
  for (size_t i = 0; i < keys.size(); ++i) {
    GossipKey k{keys[i], ComputeKeyId(keys[i])};
    for (size_t j = 0; j < ring.keys_.size(); ++j) {
      if (CRYPTO_memcmp(ring.keys_[j].bytes.data(), k.bytes.data(), kGossipKeySize) == 0) {
        return Status::InvalidArgument("key " + std::to_string(i + 1) + " repeats key " +
                                       std::to_string(j + 1));
      }
      if (ring.keys_[j].id == k.id) {
        // 2^-32 per pair: practically never, but the id must name one key.
        return Status::InvalidArgument("keys " + std::to_string(j + 1) + " and " +
                                       std::to_string(i + 1) + " share key id " + KeyIdHex(k.id) +
                                       "; generate a new key");
      }
    }
    ring.keys_.push_back(k);
    OPENSSL_cleanse(k.bytes.data(), k.bytes.size());
  }
  return ring;
}

Result<Keyring> Keyring::Parse(std::string_view text, std::string_view source) {
  std::vector<GossipKeyBytes> keys;
  auto wipe = [&keys] {
    for (auto& k : keys) OPENSSL_cleanse(k.data(), k.size());
  };
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    auto where = std::string(source) + " line " + std::to_string(line_no);
    if (keys.size() == kMaxKeyringKeys) {
      wipe();
      return Status::InvalidArgument(where + ": more than " + std::to_string(kMaxKeyringKeys) +
                                     " keys");
    }
    GossipKeyBytes key;
    Status s = DecodeKey(line, &key);
    if (!s.ok()) {
      wipe();
      return s.Prefixed(where);
    }
    keys.push_back(key);
    OPENSSL_cleanse(key.data(), key.size());
  }
  if (keys.empty()) return Status::InvalidArgument(std::string(source) + ": no key in the keyring");
  auto ring = FromKeys(keys);
  wipe();
  if (!ring.ok()) return ring.status().Prefixed(source);
  return ring;
}

Keyring& Keyring::operator=(const Keyring& other) {
  if (this != &other) {
    Wipe();
    keys_ = other.keys_;
  }
  return *this;
}

Keyring& Keyring::operator=(Keyring&& other) noexcept {
  if (this != &other) {
    Wipe();
    keys_ = std::move(other.keys_);
  }
  return *this;
}

Keyring::~Keyring() { Wipe(); }

void Keyring::Wipe() {
  for (auto& k : keys_) OPENSSL_cleanse(k.bytes.data(), k.bytes.size());
}

const GossipKey* Keyring::Find(const KeyId& id) const {
  for (const auto& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

Result<LoadedKeyring> LoadKeyring(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open keyring " + path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    return Status::FromErrno("stat keyring " + path, saved);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("keyring " + path + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxKeyringFileBytes) {
    ::close(fd);
    return Status::LimitExceeded("keyring " + path + " is larger than " +
                                 std::to_string(kMaxKeyringFileBytes) + " bytes");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::read(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      OPENSSL_cleanse(text.data(), text.size());
      return Status::FromErrno("read keyring " + path, saved);
    }
    if (n == 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(off);
  auto ring = Keyring::Parse(text, path);
  OPENSSL_cleanse(text.data(), text.size());
  if (!ring.ok()) return ring.status();
  LoadedKeyring out{std::move(*ring), {}};
  unsigned mode = st.st_mode & 0777;
  if ((mode & ~0600u) != 0) {
    char m[8];
    std::snprintf(m, sizeof(m), "%04o", mode);
    out.warning = "keyring " + path + " has mode " + m +
                  "; it should be 0600 (readable only by the agent's user): chmod 600 " + path;
  }
  return out;
}

Result<std::string> GenerateKeyLine() {
  GossipKeyBytes key;
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return OpensslError(Code::kInternal, "random gossip key");
  }
  std::string line = EncodeKey(key);
  OPENSSL_cleanse(key.data(), key.size());
  return line;
}

Status WriteNewKeyring(const std::string& path, bool force) {
  auto line = GenerateKeyLine();
  if (!line.ok()) return line.status();
  std::string text =
      "# gossync gossip keyring: one base64 key per line, the first one seals,\n"
      "# every one opens. Keep this file mode 0600 and identical on every node.\n" +
      *line + "\n";
  OPENSSL_cleanse(line->data(), line->size());
  Status s = WriteFileAtomic(path, text, 0600, force ? Overwrite::kReplace : Overwrite::kRefuse);
  OPENSSL_cleanse(text.data(), text.size());
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists(path +
                                 " already exists; replacing it cuts this node off the cluster "
                                 "(use --force to replace it)");
  }
  return s;
}

}  // namespace gossync::tls
