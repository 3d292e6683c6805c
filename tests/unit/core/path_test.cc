#include "agent/core/path.h"

#include <catch2/catch.hpp>
#include <string>

namespace gossync::core {
namespace {

using namespace std::string_literals;

bool Valid(std::string_view p) { return ValidatePath(p).ok(); }

std::string MessageOf(std::string_view p) { return ValidatePath(p).message(); }

TEST_CASE("ValidatePath: accepts canonical relative paths", "[path]") {
  for (const char* p : {"a", "a/b", "a/b/c.txt", ".bashrc", "a/.hidden", "..a", "a..", "...",
                        "a/...", "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt",
                        "emoji-\xf0\x9f\x98\x80", "a b/c d", "a:b", "x*y?z"}) {
    INFO(p);
    CHECK(Valid(p));
  }
}

TEST_CASE("ValidatePath: rejects traversal and absolute paths", "[path]") {
  for (const char* p : {"..", "../x", "a/..", "a/../../x", "a/../b", "/", "/etc/passwd", "/a", ".",
                        "./a", "a/.", "a/./b"}) {
    INFO(p);
    CHECK_FALSE(Valid(p));
  }
  CHECK(MessageOf("a/../../x") == "path has a '..' component");
  CHECK(MessageOf("/etc/passwd") == "path is absolute");
  CHECK(MessageOf("a/./b") == "path has a '.' component");
}

TEST_CASE("ValidatePath: rejects empty paths, empty components and trailing slashes", "[path]") {
  for (const char* p : {"", "a//b", "a/", "a/b/", "//", "a///b"}) {
    INFO(p);
    CHECK_FALSE(Valid(p));
  }
  CHECK(MessageOf("") == "path is empty");
  CHECK(MessageOf("a//b") == "path has an empty component");
  CHECK(MessageOf("a/") == "path ends with '/'");
}

TEST_CASE("ValidatePath: rejects NUL and backslash anywhere", "[path]") {
  CHECK_FALSE(Valid("a\0b"s));
  CHECK_FALSE(Valid("\0"s));
  CHECK_FALSE(Valid("a/b\0"s));
  CHECK(MessageOf("ab\0"s) == "path has a NUL byte at offset 2");
  CHECK_FALSE(Valid("a\\b"));
  CHECK_FALSE(Valid("..\\x"));
  CHECK_FALSE(Valid("a\\..\\..\\x"));
  CHECK_FALSE(Valid("\\"));
  CHECK(MessageOf("a\\b") == "path has a backslash at offset 1");
}

TEST_CASE("ValidatePath: enforces 4096 bytes in all and 255 per component", "[path]") {
  std::string c255(255, 'x');
  std::string c256(256, 'x');
  CHECK(Valid(c255));
  CHECK(Valid("a/" + c255 + "/b"));
  CHECK_FALSE(Valid(c256));
  CHECK_FALSE(Valid("a/" + c256));
  CHECK(MessageOf(c256) == "path component is 256 bytes, more than 255");

  // Exactly 4096 bytes: one component of 254, 15 of 255, then "a", with 16 slashes.
  std::string exact(254, 'x');
  for (int i = 0; i < 15; ++i) exact += "/" + c255;
  exact += "/a";
  REQUIRE(exact.size() == kMaxPathBytes);
  CHECK(Valid(exact));
  CHECK_FALSE(Valid(exact + "z"));
  CHECK(MessageOf(exact + "z") == "path is 4097 bytes, more than 4096");
  CHECK_FALSE(Valid(std::string(1 << 20, 'a')));
  // Multi-byte characters count as bytes: 128 two-byte characters = 256 bytes.
  std::string wide;
  for (int i = 0; i < 128; ++i) wide += "\xc3\xa9";
  CHECK_FALSE(Valid(wide));
  CHECK(Valid(wide.substr(2)));
}

TEST_CASE("IsValidUtf8: accepts well-formed text up to U+10FFFF", "[path]") {
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("plain ascii"));
  CHECK(IsValidUtf8("\x7f"));
  CHECK(IsValidUtf8("\xc2\x80"));          // U+0080
  CHECK(IsValidUtf8("\xdf\xbf"));          // U+07FF
  CHECK(IsValidUtf8("\xe0\xa0\x80"));      // U+0800
  CHECK(IsValidUtf8("\xed\x9f\xbf"));      // U+D7FF, last before surrogates
  CHECK(IsValidUtf8("\xee\x80\x80"));      // U+E000, first after surrogates
  CHECK(IsValidUtf8("\xef\xbf\xbf"));      // U+FFFF
  CHECK(IsValidUtf8("\xf0\x90\x80\x80"));  // U+10000
  CHECK(IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST_CASE("IsValidUtf8: rejects overlongs, surrogates, truncation and stray bytes", "[path]") {
  for (const std::string& s : {
           "\xc0\xaf"s,                  // overlong '/'
           "\xc1\xbf"s,                  // overlong
           "\xe0\x80\xaf"s,              // overlong '/'
           "\xe0\x9f\xbf"s,              // overlong U+07FF
           "\xf0\x80\x80\xaf"s,          // overlong '/'
           "\xf0\x8f\xbf\xbf"s,          // overlong U+FFFF
           "\xed\xa0\x80"s,              // U+D800, high surrogate
           "\xed\xbf\xbf"s,              // U+DFFF, low surrogate
           "\xed\xa0\xbd\xed\xb8\x80"s,  // CESU-8 surrogate pair
           "\xf4\x90\x80\x80"s,          // U+110000
           "\xf5\x80\x80\x80"s,
           "\xff"s,
           "\xfe"s,
           "\x80"s,  // lone continuation
           "a\xbf"s,
           "\xc3"s,          // truncated 2-byte
           "\xe6\x97"s,      // truncated 3-byte
           "\xf0\x9f\x98"s,  // truncated 4-byte
           "\xe6\x97x"s,     // bad continuation
           "\xc3\xa9\xc3"s,  // valid then truncated
       }) {
    INFO(s.size());
    CHECK_FALSE(IsValidUtf8(s));
    CHECK_FALSE(Valid("dir/" + s));
  }
  CHECK(MessageOf("ok/\xc0\xaf") == "path is not valid UTF-8 at offset 3");
}

TEST_CASE("NormalizePath: drops '.', repeated and trailing slashes", "[path]") {
  struct Case {
    const char* in;
    const char* out;
  };
  for (const Case& c : {Case{"a/./b//", "a/b"}, Case{"a", "a"}, Case{"./a", "a"}, Case{"a/", "a"},
                        Case{"a//b///c", "a/b/c"}, Case{"././a/././", "a"},
                        Case{".bashrc", ".bashrc"}, Case{"a/.../b", "a/.../b"}}) {
    INFO(c.in);
    auto r = NormalizePath(c.in);
    REQUIRE(r.ok());
    CHECK(*r == c.out);
    CHECK(Valid(*r));
  }
}

TEST_CASE("NormalizePath: rejects what no normalization makes safe", "[path]") {
  for (const std::string& p : {""s, "."s, "./"s, "//"s, "/a"s, "/"s, ".."s, "a/.."s, "a/../b"s,
                               "a/../../x"s, "./../x"s, "a\0b"s, "a\\b"s, "a/\xc0\xaf"s,
                               std::string(256, 'x'), "a/" + std::string(256, 'x') + "/"}) {
    INFO(p);
    CHECK_FALSE(NormalizePath(p).ok());
  }
  CHECK(NormalizePath("/etc").status().message() == "path is absolute");
  CHECK(NormalizePath("a/../b").status().message() == "path has a '..' component");
  CHECK(NormalizePath("./").status().message() == "path names the root of the dataset");
  // The length bound applies to the normalized result.
  std::string c(200, 'x');
  std::string long_path;
  for (int i = 0; i < 25; ++i) long_path += c + "/./";
  REQUIRE(long_path.size() < 2 * kMaxPathBytes);
  CHECK(NormalizePath(long_path).status().message() == "path is 5024 bytes, more than 4096");
  CHECK_FALSE(NormalizePath(std::string(1 << 20, '/').substr(1) + "a").ok());
}

TEST_CASE("Path helpers: ParentPath, BaseName, IsUnder", "[path]") {
  CHECK(ParentPath("a/b/c") == "a/b");
  CHECK(ParentPath("c") == "");
  CHECK(BaseName("a/b/c") == "c");
  CHECK(BaseName("c") == "c");
  CHECK(IsUnder("a/b", "a"));
  CHECK(IsUnder("a", "a"));
  CHECK(IsUnder("a/b/c", "a/b"));
  CHECK_FALSE(IsUnder("ab", "a"));
  CHECK_FALSE(IsUnder("a", "a/b"));
  CHECK_FALSE(IsUnder("b/a", "a"));
  CHECK(IsUnder("anything", ""));
}

}  // namespace
}  // namespace gossync::core
