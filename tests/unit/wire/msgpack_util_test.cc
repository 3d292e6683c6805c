#include "agent/wire/msgpack_util.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/core/seed.h"

namespace gossync::wire {
namespace {

std::vector<uint8_t> Bytes(std::initializer_list<int> list) {
  std::vector<uint8_t> v;
  for (int b : list) v.push_back(static_cast<uint8_t>(b));
  return v;
}

std::vector<uint8_t> Bytes(const msgpack::sbuffer& buf) {
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()),
                              reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
}

template <typename T>
std::vector<uint8_t> Pack(const T& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  return Bytes(buf);
}

TEST_CASE("SafeUnpack: decodes one value", "[msgpack]") {
  auto r = SafeUnpack(Pack(std::vector<int>{1, -2, 3}));
  REQUIRE(r.ok());
  const msgpack::object& o = r->get();
  REQUIRE(o.type == msgpack::type::ARRAY);
  REQUIRE(o.via.array.size == 3);
  CHECK(o.via.array.ptr[1].via.i64 == -2);
  auto s = SafeUnpack(Pack(std::string("hello")));
  REQUIRE(s.ok());
  CHECK(s->get().as<std::string>() == "hello");
}

TEST_CASE("SafeUnpack: the handle owns its strings", "[msgpack]") {
  std::vector<uint8_t> bytes = Pack(std::string("owned"));
  auto r = SafeUnpack(bytes);
  REQUIRE(r.ok());
  std::fill(bytes.begin(), bytes.end(), 0);
  CHECK(r->get().as<std::string>() == "owned");
}

TEST_CASE("SafeUnpack: rejects empty, truncated and trailing input", "[msgpack]") {
  CHECK(SafeUnpack({}).status().code() == Code::kCorruption);
  auto full = Pack(std::vector<std::string>{"abc", "defg"});
  for (size_t n = 1; n < full.size(); ++n) {
    INFO(n);
    auto r = SafeUnpack(std::span<const uint8_t>(full.data(), n));
    CHECK(r.status().code() == Code::kCorruption);
  }
  auto extra = full;
  extra.push_back(0xc0);
  auto r = SafeUnpack(extra);
  CHECK(r.status().code() == Code::kCorruption);
  CHECK(r.status().message() == "msgpack has 1 trailing bytes after the value");
  CHECK(SafeUnpack(Bytes({0xc1})).status().code() == Code::kCorruption);
}

TEST_CASE("SafeUnpack: an array32 claiming 4G elements is refused before allocating", "[msgpack]") {
  auto r = SafeUnpack(Bytes({0xdd, 0xff, 0xff, 0xff, 0xff}));
  CHECK(r.status().code() == Code::kLimitExceeded);
  CHECK(r.status().message() == "msgpack array of 4294967295 exceeds the limit of 65536");
  // Within the limit but beyond the bytes that follow: truncated, not allocated.
  UnpackLimits big;
  big.max_array = 0xffffffff;
  r = SafeUnpack(Bytes({0xdd, 0xff, 0xff, 0xff, 0xff}), big);
  CHECK(r.status().code() == Code::kCorruption);
  r = SafeUnpack(Bytes({0xdf, 0x00, 0x10, 0x00, 0x00, 0xc0, 0xc0}));
  CHECK(r.status().code() == Code::kLimitExceeded);  // map of 1M pairs
}

TEST_CASE("SafeUnpack: bin, str and ext lengths are bounded", "[msgpack]") {
  auto r = SafeUnpack(Bytes({0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}));
  CHECK(r.status().code() == Code::kLimitExceeded);
  CHECK(r.status().message() == "msgpack bin of 4294967295 bytes exceeds the limit of 4194304");
  r = SafeUnpack(
      Bytes({0xc6, 0x00, 0x10, 0x00, 0x00, 0x01, 0x02}));  // 1 MiB claimed, 2 bytes there
  CHECK(r.status().code() == Code::kCorruption);
  r = SafeUnpack(Bytes({0xdb, 0x7f, 0xff, 0xff, 0xff}));
  CHECK(r.status().code() == Code::kLimitExceeded);
  r = SafeUnpack(Bytes({0xd4, 0x01, 0x02}));  // fixext1: no ext allowed by default
  CHECK(r.status().code() == Code::kLimitExceeded);
  UnpackLimits ext4;
  ext4.max_ext = 4;
  CHECK(SafeUnpack(Bytes({0xd6, 0x01, 1, 2, 3, 4}), ext4).ok());  // fixext4 at the limit
  CHECK(SafeUnpack(Bytes({0xd7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}), ext4).status().code() ==
        Code::kLimitExceeded);
  UnpackLimits small;
  small.max_str = 3;
  CHECK(SafeUnpack(Pack(std::string("abc")), small).ok());
  CHECK(SafeUnpack(Pack(std::string("abcd")), small).status().code() == Code::kLimitExceeded);
}

TEST_CASE("SafeUnpack: 10,000-deep nesting is refused without recursion", "[msgpack]") {
  std::vector<uint8_t> deep(10000, 0x91);  // [[[[...
  deep.push_back(0xc0);
  auto r = SafeUnpack(deep);
  CHECK(r.status().code() == Code::kLimitExceeded);
  CHECK(r.status().message() == "msgpack nesting deeper than 16");
  // Right at the limit it decodes.
  std::vector<uint8_t> ok(16, 0x91);
  ok.push_back(0xc0);
  CHECK(SafeUnpack(ok).ok());
  ok.insert(ok.begin(), 0x91);
  CHECK(SafeUnpack(ok).status().code() == Code::kLimitExceeded);
  // Maps count too.
  std::vector<uint8_t> maps;
  for (int i = 0; i < 100; ++i) maps.insert(maps.end(), {0x81, 0xc0});
  maps.push_back(0xc0);
  CHECK(SafeUnpack(maps).status().code() == Code::kLimitExceeded);
}

TEST_CASE("SafeUnpack: the total number of values is bounded", "[msgpack]") {
  UnpackLimits lim;
  lim.max_objects = 10;
  CHECK(SafeUnpack(Pack(std::vector<int>(9, 1)), lim).ok());  // the array and 9 ints
  CHECK(SafeUnpack(Pack(std::vector<int>(10, 1)), lim).status().code() == Code::kLimitExceeded);
}

// Random well-formed values: the scan must accept all that msgpack-c does,
// and yield the same object. Strings and bins are never empty here because
// msgpack-c's object operator== memcmp()s a null pointer for them (UBSan).
void PackRandom(std::mt19937_64& rng, msgpack::packer<msgpack::sbuffer>& pk, int depth) {
  switch (rng() % (depth < 5 ? 12 : 10)) {
    case 0:
      pk.pack_nil();
      break;
    case 1:
      pk.pack(rng() % 2 == 0);
      break;
    case 2:
      pk.pack(static_cast<uint64_t>(rng() >> (rng() % 64)));
      break;
    case 3:
      pk.pack(-static_cast<int64_t>(rng() >> (1 + rng() % 63)));
      break;
    case 4:
      pk.pack(static_cast<double>(rng() % 1000) / 7);
      break;
    case 5:
      pk.pack(static_cast<float>(rng() % 1000) / 7);
      break;
    case 6:
      pk.pack(std::string(1 + rng() % 300, 's'));
      break;
    case 7: {
      std::vector<char> bin(rng() % 70000 == 0 ? 70000 : 1 + rng() % 300, 'b');
      pk.pack_bin(static_cast<uint32_t>(bin.size()));
      pk.pack_bin_body(bin.data(), static_cast<uint32_t>(bin.size()));
      break;
    }
    case 8: {
      uint32_t len = static_cast<uint32_t>(1 + rng() % 20);
      std::string body(len, 'e');
      pk.pack_ext(len, 5);
      pk.pack_ext_body(body.data(), len);
      break;
    }
    case 9:
      pk.pack(std::string(1 + rng() % 40000, 'l'));
      break;
    case 10: {
      uint32_t n = static_cast<uint32_t>(rng() % 20);
      pk.pack_array(n);
      for (uint32_t i = 0; i < n; ++i) PackRandom(rng, pk, depth + 1);
      break;
    }
    case 11: {
      uint32_t n = static_cast<uint32_t>(rng() % 20);
      pk.pack_map(n);
      for (uint32_t i = 0; i < 2 * n; ++i) PackRandom(rng, pk, depth + 1);
      break;
    }
  }
}

TEST_CASE("SafeUnpack: accepts every well-formed value msgpack-c accepts", "[msgpack][property]") {
  GOSSYNC_SEEDED_RNG(0x3a9);
  UnpackLimits lim;
  lim.max_ext = 64;
  for (int i = 0; i < 500; ++i) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    PackRandom(rng, pk, 0);
    auto bytes = Bytes(buf);
    auto r = SafeUnpack(bytes, lim);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    msgpack::object_handle direct = msgpack::unpack(buf.data(), buf.size());
    REQUIRE(r->get() == direct.get());
    // Every strict prefix is truncated.
    size_t cut = rng() % bytes.size();
    REQUIRE_FALSE(SafeUnpack(std::span<const uint8_t>(bytes.data(), cut), lim).ok());
  }
}

TEST_CASE("SafeUnpack: random bytes never crash", "[msgpack][property]") {
  GOSSYNC_SEEDED_RNG(0xb17e5);
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 100000; ++i) {
    bytes.resize(1 + rng() % 32);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    auto r = SafeUnpack(bytes);
    if (!r.ok()) REQUIRE_FALSE(r.status().message().empty());
  }
}

TEST_CASE("Typed reads: wrong types and ranges are errors, not exceptions", "[msgpack]") {
  auto oh =
      SafeUnpack(Pack(std::make_tuple(uint64_t{7}, int64_t{-3}, std::string("s"), true, 300u)));
  REQUIRE(oh.ok());
  auto f = ArrayReader::Open(oh->get(), "msg", 5, 5);
  REQUIRE(f.ok());
  uint64_t u = 0;
  int64_t i = 0;
  bool b = false;
  std::string s;
  core::Hash256 h{};
  CHECK(f->Uint(0, "a", &u).ok());
  CHECK(u == 7);
  CHECK(f->Int(1, "b", &i).ok());
  CHECK(i == -3);
  CHECK(f->Int(0, "a", &i).ok());
  CHECK(i == 7);
  CHECK(f->Str(2, "c", &s, 10).ok());
  CHECK(f->Bool(3, "d", &b).ok());
  CHECK(b);

  CHECK(f->Uint(1, "b", &u).message() == "msg.b: -3 is negative");
  CHECK(f->Uint(2, "c", &u).message() == "msg.c: expected an unsigned integer, got str");
  CHECK(f->Uint(4, "e", &u, 255).message() == "msg.e: 300 is out of range (max 255)");
  CHECK(f->Bool(0, "a", &b).message() == "msg.a: expected a bool, got unsigned integer");
  CHECK(f->Str(0, "a", &s, 10).message() == "msg.a: expected a str, got unsigned integer");
  CHECK(f->Str(2, "c", &s, 0).code() == Code::kLimitExceeded);
  CHECK(f->Hash(2, "c", &h).message() == "msg.c: expected a bin of 32 bytes, got str");
  CHECK(f->Array(0, "a", 0, 1).status().message() ==
        "msg.a: expected an array, got unsigned integer");

  CHECK(ArrayReader::Open(oh->get(), "msg", 6, 6).status().message() ==
        "msg: expected 6 elements, got 5");
  CHECK(ArrayReader::Open(oh->get(), "msg", 1, 4).status().message() ==
        "msg: expected 1..4 elements, got 5");

  auto big = SafeUnpack(Pack(uint64_t{UINT64_MAX}));
  REQUIRE(big.ok());
  CHECK(ReadInt(big->get(), "x", &i).message() ==
        "x: 18446744073709551615 is out of range for a signed 64-bit integer");

  std::vector<char> short_bin(31, 'x');
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_bin(31);
  pk.pack_bin_body(short_bin.data(), 31);
  auto bin = SafeUnpack(Bytes(buf));
  REQUIRE(bin.ok());
  CHECK(ReadHash(bin->get(), "h", &h).message() == "h: a hash is 32 bytes, got 31");
  std::span<const uint8_t> view;
  CHECK(ReadBin(bin->get(), "h", &view, 31).ok());
  CHECK(view.size() == 31);
  CHECK(ReadBin(bin->get(), "h", &view, 30).code() == Code::kLimitExceeded);
}

}  // namespace
}  // namespace gossync::wire
