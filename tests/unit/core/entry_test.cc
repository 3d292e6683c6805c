#include "agent/core/entry.h"

#include <catch2/catch.hpp>

namespace gossync::core {
namespace {

Entry SampleFile() {
  Entry e;
  e.path = "a/b.txt";
  e.kind = EntryKind::kFile;
  e.mode = 0644;
  e.size = 5;
  e.mtime_ns = 1700000000123456789;
  e.hash = Sha256(std::string_view("hello"));
  e.vv = VersionVector({{0x1122334455667788, 3}, {0xaabbccddeeff0011, 1}});
  e.hlc = 0x1234;
  e.origin = "alpha";
  return e;
}

void ForcePairs(VersionVector& vv, std::vector<VvPair> pairs) {
  const_cast<std::vector<VvPair>&>(vv.pairs()) = std::move(pairs);
}

std::string Hex(const std::string& s) {
  return ToHex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

TEST_CASE("Entry: canonical encoding is byte-exact and stable", "[entry]") {
  // Computed independently (Python struct.pack); if this changes, every
  // node's tree changes: bump "gossync-entry-v1" instead.
  Entry e = SampleFile();
  CHECK(Hex(CanonicalEncoding(e)) ==
        "676f7373796e632d656e7472792d7631000007612f622e74787400000001a417979cfe3d85cd152c"
        "f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824000000021122334455"
        "6677880000000000000003aabbccddeeff0011000000000000000100");
  CHECK(ToHex(e.Digest()) == "c10e465c66d03e25119e4417b0f480538ed61bf8f53b08884bd26138abea0c04");

  Entry t;
  t.path = "a/b.txt";
  t.deleted = true;
  t.mode = 0755;                           // normalised away
  t.mtime_ns = 99;                         // normalised away
  t.hash = Sha256(std::string_view("x"));  // normalised away (ValidateEntry would refuse it)
  t.vv = VersionVector({{7, 9}});
  t.origin = "beta";
  CHECK(Hex(CanonicalEncoding(t)) ==
        "676f7373796e632d656e7472792d7631000007612f622e7478740000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000010000000000"
        "000007000000000000000901");
  CHECK(ToHex(t.Digest()) == "1f6f43801b87cca2fe9435b962c7e7274478a7b3f93b25d38bbdca0df3176834");
}

TEST_CASE("Entry: a dot is appended to the encoding, and no dot keeps the old encoding",
          "[entry]") {
  Entry e = SampleFile();
  const std::string plain = CanonicalEncoding(e);
  e.dot = e.vv.pairs()[0];
  const std::string dotted = CanonicalEncoding(e);
  REQUIRE(dotted.size() == plain.size() + 16);
  CHECK(dotted.substr(0, plain.size()) == plain);
  std::string want(16, '\0');
  for (int i = 0; i < 8; ++i) {
    want[i] = static_cast<char>(e.dot.node >> (56 - 8 * i));
    want[8 + i] = static_cast<char>(e.dot.counter >> (56 - 8 * i));
  }
  CHECK(dotted.substr(plain.size()) == want);
  CHECK(e.Digest() != SampleFile().Digest());
  Entry other = e;
  other.dot = e.vv.pairs()[1];
  CHECK(other.Digest() != e.Digest());
}

TEST_CASE("ValidateEntry: a dot is one of the entry's own changes, and tombstones have none",
          "[entry]") {
  Entry e = SampleFile();
  for (const VvPair& p : e.vv.pairs()) {
    e.dot = p;
    CHECK(ValidateEntry(e).ok());
    e.dot.counter = p.counter + 1;
    CHECK(ValidateEntry(e).message() == "dot is not covered by the version vector");
  }
  e.dot = {0xdead, 1};
  CHECK(ValidateEntry(e).message() == "dot is not covered by the version vector");
  e.dot = {e.vv.pairs()[0].node, 0};
  CHECK(ValidateEntry(e).message() == "dot has a node but no counter");
  Entry t = SampleFile();
  t.deleted = true;
  t.hash = kZeroHash;
  CHECK(ValidateEntry(t).ok());
  t.dot = t.vv.pairs()[0];
  CHECK(ValidateEntry(t).message() == "a tombstone has a dot");
}

TEST_CASE("Entry: digest changes with each digest field", "[entry]") {
  const Entry base = SampleFile();
  const Hash256 d = base.Digest();
  auto differs = [&](auto mutate) {
    Entry e = base;
    mutate(e);
    return e.Digest() != d;
  };
  CHECK(differs([](Entry& e) { e.path = "a/c.txt"; }));
  CHECK(differs([](Entry& e) { e.kind = EntryKind::kSymlink; }));
  CHECK(differs([](Entry& e) { e.mode = 0600; }));
  CHECK(differs([](Entry& e) { e.mtime_ns += 1; }));
  CHECK(differs([](Entry& e) { e.hash[31] ^= 1; }));
  CHECK(differs([](Entry& e) { e.vv.Set(0x1122334455667788, 4); }));
  CHECK(differs([](Entry& e) { e.vv.Set(5, 1); }));
  CHECK(differs([](Entry& e) { e.deleted = true; }));
  // Not part of the version's identity:
  CHECK_FALSE(differs([](Entry& e) { e.size = 6; }));
  CHECK_FALSE(differs([](Entry& e) { e.hlc = 1; }));
  CHECK_FALSE(differs([](Entry& e) { e.origin = "gamma"; }));
}

TEST_CASE("Entry: tombstones of the same version digest the same", "[entry]") {
  Entry a = SampleFile();
  a.deleted = true;
  Entry b = a;
  b.mode = 0;
  b.mtime_ns = 0;
  b.hash = kZeroHash;
  b.size = 0;
  CHECK(a.Digest() == b.Digest());
  CHECK(CanonicalEncoding(a) == CanonicalEncoding(b));
  Entry live = SampleFile();
  CHECK(live.Digest() != a.Digest());
}

TEST_CASE("Entry: a directory's mtime is not in its digest", "[entry]") {
  Entry dir;
  dir.path = "photos";
  dir.kind = EntryKind::kDirectory;
  dir.mode = 0755;
  dir.mtime_ns = 1;
  dir.vv = VersionVector({{1, 1}});
  dir.origin = "alpha";
  Entry later = dir;
  later.mtime_ns = 1'000'000'000'000;
  CHECK(dir.Digest() == later.Digest());
  later.mode = 0700;
  CHECK(dir.Digest() != later.Digest());
}

TEST_CASE("IsValidNodeName: lowercase, digits, dot, dash, underscore", "[entry]") {
  for (const char* n : {"alpha", "a", "node-1", "web01.dc2", "x_y", "9lives"}) {
    INFO(n);
    CHECK(IsValidNodeName(n));
  }
  CHECK(IsValidNodeName(std::string(63, 'a')));
  CHECK_FALSE(IsValidNodeName(std::string(64, 'a')));
  for (const char* n :
       {"", "Alpha", "-a", ".a", "_a", "a b", "a/b", "a\\b", "caf\xc3\xa9", "a:b"}) {
    INFO(n);
    CHECK_FALSE(IsValidNodeName(n));
  }
}

TEST_CASE("ValidateEntry: accepts well-formed files, directories, symlinks and tombstones",
          "[entry]") {
  CHECK(ValidateEntry(SampleFile()).ok());
  Entry dir = SampleFile();
  dir.kind = EntryKind::kDirectory;
  dir.hash = kZeroHash;
  CHECK(ValidateEntry(dir).ok());
  Entry link = SampleFile();
  link.kind = EntryKind::kSymlink;
  link.target = "../elsewhere";
  link.hash = Sha256(link.target);
  CHECK(ValidateEntry(link).ok());
  Entry tomb = SampleFile();
  tomb.deleted = true;
  tomb.hash = kZeroHash;
  CHECK(ValidateEntry(tomb).ok());
}

TEST_CASE("ValidateEntry: rejects what a peer could get wrong", "[entry]") {
  struct Case {
    const char* what;
    void (*mutate)(Entry&);
  };
  const Case cases[] = {
      {"bad path", [](Entry& e) { e.path = "a/../b"; }},
      {"empty path", [](Entry& e) { e.path = ""; }},
      {"unknown kind", [](Entry& e) { e.kind = static_cast<EntryKind>(3); }},
      {"mode beyond 07777", [](Entry& e) { e.mode = 0100644; }},
      // The constructor CHECKs; only a bypass can build these, which is what
      // ValidateEntry defends against.
      {"unsorted vv",
       [](Entry& e) {
         ForcePairs(e.vv, {{2, 1}, {1, 1}});
       }},
      {"zero counter",
       [](Entry& e) {
         ForcePairs(e.vv, {{1, 0}});
       }},
      {"bad origin", [](Entry& e) { e.origin = "Not Valid"; }},
      {"empty origin", [](Entry& e) { e.origin = ""; }},
      {"file with target", [](Entry& e) { e.target = "x"; }},
      {"dir with hash", [](Entry& e) { e.kind = EntryKind::kDirectory; }},
      {"tombstone with hash", [](Entry& e) { e.deleted = true; }},
      {"symlink hash mismatch",
       [](Entry& e) {
         e.kind = EntryKind::kSymlink;
         e.target = "x";
       }},
      {"symlink empty target",
       [](Entry& e) {
         e.kind = EntryKind::kSymlink;
         e.target = "";
         e.hash = Sha256(std::string_view(""));
       }},
      {"symlink NUL target",
       [](Entry& e) {
         e.kind = EntryKind::kSymlink;
         e.target = std::string("a\0b", 3);
         e.hash = Sha256(e.target);
       }},
      {"symlink target too long",
       [](Entry& e) {
         e.kind = EntryKind::kSymlink;
         e.target = std::string(kMaxSymlinkTarget + 1, 'x');
         e.hash = Sha256(e.target);
       }},
      {"tombstone with target",
       [](Entry& e) {
         e.kind = EntryKind::kSymlink;
         e.deleted = true;
         e.hash = kZeroHash;
         e.target = "x";
       }},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Entry e = SampleFile();
    c.mutate(e);
    Status s = ValidateEntry(e);
    CHECK_FALSE(s.ok());
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_FALSE(s.message().empty());
  }
  Entry max_link = SampleFile();
  max_link.kind = EntryKind::kSymlink;
  max_link.target = std::string(kMaxSymlinkTarget, 'x');
  max_link.hash = Sha256(max_link.target);
  CHECK(ValidateEntry(max_link).ok());
}

TEST_CASE("KindName: names every kind", "[entry]") {
  CHECK(std::string(KindName(EntryKind::kFile)) == "file");
  CHECK(std::string(KindName(EntryKind::kDirectory)) == "directory");
  CHECK(std::string(KindName(EntryKind::kSymlink)) == "symlink");
}

}  // namespace
}  // namespace gossync::core
