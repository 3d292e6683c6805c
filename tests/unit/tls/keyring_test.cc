#include "agent/tls/keyring.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <set>

#include "agent/tls/secret_file.h"
#include "tests/unit/tls/tls_test_util.h"

namespace gossync::tls {
namespace {

using testing::TempDir;

std::string Line() {
  auto l = GenerateKeyLine();
  REQUIRE(l.ok());
  return *l;
}

GossipKeyBytes Decode(const std::string& line) {
  unsigned char out[33];
  REQUIRE(EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(line.data()),
                          static_cast<int>(line.size())) == 33);
  GossipKeyBytes k;
  std::copy(out, out + 32, k.begin());
  return k;
}

void Write(const std::string& path, const std::string& text, unsigned mode) {
  REQUIRE(WriteFileAtomic(path, text, mode, Overwrite::kReplace).ok());
}

TEST_CASE("Keyring: a generated key line is 44 base64 characters of 32 fresh bytes",
          "[tls][keyring]") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string line = Line();
    CHECK(line.size() == 44);
    CHECK(line.back() == '=');
    CHECK(line.find('\n') == std::string::npos);
    seen.insert(line);
    auto ring = Keyring::Parse(line);
    REQUIRE(ring.ok());
    CHECK(ring->primary().bytes == Decode(line));
  }
  CHECK(seen.size() == 100);
}

TEST_CASE("Keyring: the key id is the first 4 bytes of SHA-256(\"gossync-key-id\" || key)",
          "[tls][keyring]") {
  GossipKeyBytes key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  std::string input = "gossync-key-id" + std::string(key.begin(), key.end());
  unsigned char md[32];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(input.data(), input.size(), md, &len, EVP_sha256(), nullptr) == 1);
  KeyId want{md[0], md[1], md[2], md[3]};
  CHECK(ComputeKeyId(key) == want);
  CHECK(KeyIdHex(want).size() == 8);
}

TEST_CASE("Keyring: comments and blank lines are skipped, the first key is primary",
          "[tls][keyring]") {
  std::string a = Line(), b = Line(), c = Line();
  std::string text = "# gossip keys\n\n   " + a + "   # new, seals\r\n\t\n" + b +
                     "\n# retired soon\n" + c;  // no final newline
  auto ring = Keyring::Parse(text, "gossip.keys");
  INFO(ring.status().ToString());
  REQUIRE(ring.ok());
  REQUIRE(ring->size() == 3);
  CHECK(ring->primary().bytes == Decode(a));
  CHECK(ring->keys()[1].bytes == Decode(b));
  CHECK(ring->keys()[2].bytes == Decode(c));
  for (const auto& k : ring->keys()) {
    const GossipKey* found = ring->Find(k.id);
    REQUIRE(found != nullptr);
    CHECK(found->bytes == k.bytes);
    CHECK(k.id == ComputeKeyId(k.bytes));
  }
  CHECK(ring->Find(KeyId{0, 0, 0, 0}) == nullptr);
}

TEST_CASE("Keyring: a bad line is an error naming the file and line number", "[tls][keyring]") {
  std::string good = Line();
  struct Case {
    std::string line;
    std::string says;
  };
  std::string noncanonical = good;
  // The last base64 digit before '=' carries 2 unused bits; set one.
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  noncanonical[42] = alphabet[alphabet.find(good[42]) | 1];
  for (const Case& c : std::vector<Case>{
           {"hello", "expected 44 base64 characters"},
           {good.substr(0, 43), "expected 44"},
           {good + "A", "expected 44"},
           {good.substr(0, 20) + "*" + good.substr(21), "character 21 is not base64"},
           {good.substr(0, 43) + "A", "ends with '='"},
           {good.substr(0, 10) + " " + good.substr(11), "not base64"},
           {noncanonical, "non-canonical"},
       }) {
    INFO("line: " << c.line);
    auto ring = Keyring::Parse("# header\n" + good + "\n\n" + c.line + "\n", "/etc/k");
    REQUIRE_FALSE(ring.ok());
    CHECK(ring.status().code() == Code::kInvalidArgument);
    CHECK_THAT(ring.status().message(), Catch::StartsWith("/etc/k line 4: "));
    CHECK_THAT(ring.status().message(), Catch::Contains(c.says));
  }
}

TEST_CASE("Keyring: at most 16 keys, at least one, none repeated", "[tls][keyring]") {
  std::string text;
  for (int i = 0; i < 16; ++i) text += Line() + "\n";
  auto ring = Keyring::Parse(text);
  REQUIRE(ring.ok());
  CHECK(ring->size() == 16);
  auto over = Keyring::Parse(text + "# one more\n" + Line() + "\n", "k");
  REQUIRE_FALSE(over.ok());
  CHECK_THAT(over.status().message(), Catch::Contains("k line 18: more than 16 keys"));

  auto empty = Keyring::Parse("# nothing\n\n", "k");
  REQUIRE_FALSE(empty.ok());
  CHECK_THAT(empty.status().message(), Catch::Contains("no key"));

  std::string a = Line();
  auto dup = Keyring::Parse(a + "\n" + Line() + "\n" + a + "\n", "k");
  REQUIRE_FALSE(dup.ok());
  CHECK_THAT(dup.status().message(), Catch::Contains("key 3 repeats key 1"));
  CHECK(Keyring::FromKeys({}).status().code() == Code::kInvalidArgument);
}

TEST_CASE("Keyring: a new keyring file is mode 0600, loads without a warning, is not replaced",
          "[tls][keyring]") {
  TempDir dir;
  std::string path = dir / "gossip.keys";
  REQUIRE(WriteNewKeyring(path).ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  auto loaded = LoadKeyring(path);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  CHECK(loaded->keyring.size() == 1);
  CHECK(loaded->warning.empty());
  KeyId first = loaded->keyring.primary().id;

  Status again = WriteNewKeyring(path);
  CHECK(again.code() == Code::kAlreadyExists);
  CHECK_THAT(again.message(), Catch::Contains(path));
  CHECK(LoadKeyring(path)->keyring.primary().id == first);

  REQUIRE(WriteNewKeyring(path, /*force=*/true).ok());
  CHECK(LoadKeyring(path)->keyring.primary().id != first);
}

TEST_CASE("Keyring: a file readable by others loads with a warning to log", "[tls][keyring]") {
  TempDir dir;
  std::string path = dir / "gossip.keys";
  for (unsigned mode : {0644u, 0640u, 0604u, 0700u, 0660u}) {
    Write(path, Line() + "\n", mode);
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    auto loaded = LoadKeyring(path);
    REQUIRE(loaded.ok());
    char m[8];
    std::snprintf(m, sizeof(m), "%04o", mode);
    INFO(loaded->warning);
    CHECK_THAT(loaded->warning, Catch::Contains(std::string("mode ") + m));
    CHECK_THAT(loaded->warning, Catch::Contains(path));
  }
  for (unsigned mode : {0600u, 0400u}) {
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    CHECK(LoadKeyring(path)->warning.empty());
  }
}

TEST_CASE("Keyring: load errors name the file", "[tls][keyring]") {
  TempDir dir;
  auto missing = LoadKeyring(dir / "nope");
  CHECK(missing.status().code() == Code::kIoError);
  CHECK_THAT(missing.status().message(), Catch::Contains(dir / "nope"));
  auto is_dir = LoadKeyring(dir.path());
  CHECK_THAT(is_dir.status().message(), Catch::Contains("not a regular file"));
  Write(dir / "big", std::string(kMaxKeyringFileBytes + 1, '#'), 0600);
  CHECK(LoadKeyring(dir / "big").status().code() == Code::kLimitExceeded);
  Write(dir / "bad", Line() + "\nnot-a-key\n", 0600);
  auto bad = LoadKeyring(dir / "bad");
  CHECK_THAT(bad.status().message(), Catch::StartsWith(dir / "bad" + " line 2: "));
}

TEST_CASE("Keyring: copies and moves keep the keys", "[tls][keyring]") {
  auto ring = Keyring::Parse(Line() + "\n" + Line());
  REQUIRE(ring.ok());
  Keyring copy = *ring;
  CHECK(copy.keys()[1].bytes == ring->keys()[1].bytes);
  Keyring moved = std::move(copy);
  CHECK(moved.keys()[0].bytes == ring->keys()[0].bytes);
  Keyring assigned = *Keyring::Parse(Line());
  assigned = moved;
  CHECK(assigned.size() == 2);
}

}  // namespace
}  // namespace gossync::tls
