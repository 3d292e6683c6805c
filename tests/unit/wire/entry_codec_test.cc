#include "agent/wire/entry_codec.h"

#include <catch2/catch.hpp>
#include <functional>
#include <random>

#include "tests/unit/core/seed.h"

namespace gossync::wire {
namespace {

using core::Entry;
using core::EntryKind;

Entry RandomEntry(std::mt19937_64& rng) {
  static const char* kNames[] = {"a",       "report.csv", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                                 ".bashrc", "x y"};
  Entry e;
  const int parts = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < parts; ++i) {
    if (i) e.path += '/';
    e.path += kNames[rng() % 6];
  }
  if (rng() % 10 == 0) e.path += "/" + std::string(255, 'L');
  std::vector<core::VvPair> pairs;
  core::NodeId node = 0;
  for (int i = 0, n = static_cast<int>(rng() % 6); i < n; ++i) {
    node += 1 + rng() % (i % 2 ? 1000 : UINT32_MAX);
    pairs.push_back({node, 1 + (rng() >> (rng() % 64))});
  }
  e.vv = core::VersionVector(pairs);
  e.hlc = rng();
  e.origin = rng() % 2 ? "alpha" : "node-" + std::to_string(rng() % 1000);
  e.mtime_ns = static_cast<int64_t>(rng());  // negative too
  switch (rng() % 4) {
    case 0:
      e.kind = EntryKind::kDirectory;
      e.mode = 0755;
      break;
    case 1:
      e.kind = EntryKind::kSymlink;
      e.mode = 0777;
      e.target = rng() % 5 ? "../target/" + std::to_string(rng())
                           : std::string(core::kMaxSymlinkTarget, 't');
      e.hash = core::Sha256(e.target);
      e.size = e.target.size();
      break;
    default:
      e.kind = EntryKind::kFile;
      e.mode = static_cast<uint32_t>(rng() % 010000);
      e.size = rng() >> (rng() % 64);
      e.hash = core::Sha256(std::to_string(rng()));
  }
  if (rng() % 5 == 0) {
    e.deleted = true;
    e.hash = {};
    e.target.clear();
  } else if (!pairs.empty() && rng() % 2) {
    e.dot = pairs[rng() % pairs.size()];
    e.dot.counter -= rng() % e.dot.counter;  // covered by the VV
  }
  return e;
}

Entry Sample() {
  Entry e;
  e.path = "a/b.txt";
  e.mode = 0644;
  e.size = 5;
  e.mtime_ns = 1700000000123456789;
  e.hash = core::Sha256(std::string_view("hello"));
  e.vv = core::VersionVector({{1, 3}, {2, 1}});
  e.hlc = 0x123456789;
  e.origin = "alpha";
  return e;
}

TEST_CASE("EntryCodec: random entries survive the round trip", "[entry_codec][property]") {
  GOSSYNC_SEEDED_RNG(0xe7c0);
  for (int i = 0; i < 5000; ++i) {
    Entry e = RandomEntry(rng);
    REQUIRE(core::ValidateEntry(e).ok());
    std::vector<uint8_t> bytes = EncodeEntry(e);
    auto back = DecodeEntry(bytes);
    INFO(back.status().ToString());
    REQUIRE(back.ok());
    REQUIRE(*back == e);
    REQUIRE(back->Digest() == e.Digest());
    REQUIRE(FuzzDecodeEntry(bytes.data(), bytes.size()) == 0);
  }
}

TEST_CASE("EntryCodec: the encoding is compact and positional", "[entry_codec]") {
  std::vector<uint8_t> bytes = EncodeEntry(Sample());
  CHECK(bytes[0] == 0x9c);  // fixarray of 12
  // path 8, kind 1, mode 3, size 1, mtime 9, hash 34, target 1, vv 1+3+3,
  // hlc 9, origin 6, deleted 1, dot 1+1+1, plus the array header.
  CHECK(bytes.size() == 1 + 8 + 1 + 3 + 1 + 9 + 34 + 1 + 7 + 9 + 6 + 1 + 3);
  // The hash travels as bin 8 of 32 bytes.
  auto oh = SafeUnpack(bytes);
  REQUIRE(oh.ok());
  CHECK(oh->get().via.array.ptr[5].type == msgpack::type::BIN);
  CHECK(oh->get().via.array.ptr[7].via.array.ptr[0].via.array.size == 2);
}

TEST_CASE("EntryCodec: every truncation is an error", "[entry_codec]") {
  std::vector<uint8_t> bytes = EncodeEntry(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO(n);
    auto r = DecodeEntry(std::span<const uint8_t>(bytes.data(), n));
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.status().message().empty());
  }
}

// Re-packs Sample() with field `i` written by `write` instead.
std::vector<uint8_t> WithField(size_t i,
                               const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& write,
                               size_t fields = kEntryFields) {
  std::vector<uint8_t> good = EncodeEntry(Sample());
  auto oh = SafeUnpack(good);
  GOSSYNC_CHECK(oh.ok());
  const msgpack::object& o = oh->get();
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(static_cast<uint32_t>(fields));
  for (size_t k = 0; k < fields; ++k) {
    if (k == i) {
      write(pk);
    } else if (k < kEntryFields) {
      pk.pack(o.via.array.ptr[k]);
    } else {
      pk.pack_nil();
    }
  }
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()),
                              reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
}

std::string ErrorOf(const std::vector<uint8_t>& bytes) {
  auto r = DecodeEntry(bytes);
  return r.ok() ? "OK" : r.status().message();
}

TEST_CASE("EntryCodec: wrong types name the field", "[entry_codec]") {
  auto str = [](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack(std::string("x")); };
  auto num = [](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack(7); };
  auto neg = [](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack(-1); };
  auto nil = [](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack_nil(); };
  CHECK(ErrorOf(WithField(0, num)) == "entry.path: expected a str, got unsigned integer");
  CHECK(ErrorOf(WithField(1, str)) == "entry.kind: expected an unsigned integer, got str");
  CHECK(ErrorOf(WithField(1, num)) == "entry.kind: 7 is out of range (max 2)");
  CHECK(ErrorOf(WithField(2, [](auto& pk) { pk.pack(0100644); })) ==
        "entry.mode: 33188 is out of range (max 4095)");
  CHECK(ErrorOf(WithField(3, neg)) == "entry.size: -1 is negative");
  CHECK(ErrorOf(WithField(4, str)) == "entry.mtime_ns: expected an integer, got str");
  CHECK(ErrorOf(WithField(5, str)) == "entry.hash: expected a bin of 32 bytes, got str");
  CHECK(ErrorOf(WithField(6, nil)) == "entry.target: expected a str, got nil");
  CHECK(ErrorOf(WithField(7, num)) == "entry.vv: expected an array, got unsigned integer");
  CHECK(ErrorOf(WithField(7, [](auto& pk) {
          pk.pack_array(1);
          pk.pack(1);
        })) == "entry.vv.[0]: expected an array, got unsigned integer");
  CHECK(ErrorOf(WithField(7, [](auto& pk) {
          pk.pack_array(1);
          pk.pack_array(3);
          pk.pack(1);
          pk.pack(1);
          pk.pack(1);
        })) == "entry.vv.[0]: expected 2 elements, got 3");
  CHECK(ErrorOf(WithField(7, [](auto& pk) {
          pk.pack_array(1);
          pk.pack_array(2);
          pk.pack(1);
          pk.pack(-1);
        })) == "entry.vv.[0].counter: -1 is negative");
  CHECK(ErrorOf(WithField(8, [](auto& pk) { pk.pack(1.5); })) ==
        "entry.hlc: expected an unsigned integer, got float64");
  CHECK(ErrorOf(WithField(9, num)) == "entry.origin: expected a str, got unsigned integer");
  CHECK(ErrorOf(WithField(10, num)) == "entry.deleted: expected a bool, got unsigned integer");
  CHECK(ErrorOf(WithField(11, nil)) == "entry.dot: expected an array, got nil");
  CHECK(ErrorOf(WithField(11, [](auto& pk) { pk.pack(std::make_tuple(1)); })) ==
        "entry.dot: expected 2 elements, got 1");
  CHECK(ErrorOf(WithField(0, [](auto& pk) { pk.pack_map(0); })) ==
        "entry.path: expected a str, got map");
}

TEST_CASE("EntryCodec: values that parse but are invalid are rejected", "[entry_codec]") {
  auto bad_vv = [](msgpack::packer<msgpack::sbuffer>& pk) {
    pk.pack_array(2);
    pk.pack(std::make_tuple(5, 1));
    pk.pack(std::make_tuple(2, 1));
  };
  CHECK(ErrorOf(WithField(7, bad_vv)) ==
        "entry.vv: pairs must be sorted by node, unique, with counters > 0");
  auto zero = [](msgpack::packer<msgpack::sbuffer>& pk) {
    pk.pack_array(1);
    pk.pack(std::make_tuple(5, 0));
  };
  CHECK(ErrorOf(WithField(7, zero)) ==
        "entry.vv: pairs must be sorted by node, unique, with counters > 0");
  CHECK(ErrorOf(WithField(0, [](auto& pk) { pk.pack(std::string("../etc/passwd")); })) ==
        "entry: path has a '..' component");
  CHECK(ErrorOf(WithField(0, [](auto& pk) { pk.pack(std::string(5000, 'x')); })) ==
        "entry.path: 5000 bytes, more than 4096");
  CHECK(ErrorOf(WithField(9, [](auto& pk) { pk.pack(std::string("EVIL")); })) ==
        "entry: origin is not a valid node name");
  CHECK(ErrorOf(WithField(5, [](auto& pk) {
          pk.pack_bin(33);
          pk.pack_bin_body(std::string(33, 'h').data(), 33);
        })) == "entry.hash: a hash is 32 bytes, got 33");
  auto big_vv = [](msgpack::packer<msgpack::sbuffer>& pk) {
    pk.pack_array(static_cast<uint32_t>(kMaxVvPairs + 1));
    for (size_t i = 0; i <= kMaxVvPairs; ++i) pk.pack(std::make_tuple(i + 1, 1));
  };
  CHECK(ErrorOf(WithField(7, big_vv)) == "entry.vv: expected 0..1024 elements, got 1025");
  // Sample()'s VV is {1:3, 2:1}: a dot must be one of its changes.
  CHECK(ErrorOf(WithField(11, [](auto& pk) { pk.pack(std::make_tuple(1, 3)); })) == "OK");
  CHECK(ErrorOf(WithField(11, [](auto& pk) { pk.pack(std::make_tuple(1, 4)); })) ==
        "entry: dot is not covered by the version vector");
  CHECK(ErrorOf(WithField(11, [](auto& pk) { pk.pack(std::make_tuple(3, 1)); })) ==
        "entry: dot is not covered by the version vector");
  CHECK(ErrorOf(WithField(11, [](auto& pk) { pk.pack(std::make_tuple(1, 0)); })) ==
        "entry: dot has a node but no counter");
}

TEST_CASE("EntryCodec: extra and missing fields are rejected", "[entry_codec]") {
  auto nil = [](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack_nil(); };
  CHECK(ErrorOf(WithField(12, nil, 13)) == "entry: expected 12 elements, got 13");
  CHECK(ErrorOf(WithField(99, nil, 11)) == "entry: expected 12 elements, got 11");
  CHECK(ErrorOf(WithField(99, nil, 0)) == "entry: expected 12 elements, got 0");
  msgpack::sbuffer buf;
  msgpack::pack(buf, std::map<std::string, int>{{"path", 1}});
  CHECK(ErrorOf(std::vector<uint8_t>(buf.data(), buf.data() + buf.size())) ==
        "entry: expected an array, got map");
}

TEST_CASE("EntryCodec: hostile byte strings are errors, never crashes", "[entry_codec]") {
  const std::vector<std::vector<uint8_t>> hostile = {
      {0xdd, 0xff, 0xff, 0xff, 0xff},        // array32 of 4G
      {0xc6, 0xff, 0xff, 0xff, 0xff},        // bin32 of 4G
      {0x9b, 0xc6, 0x7f, 0xff, 0xff, 0xff},  // entry whose path is a 2 GiB bin
      {0xdb, 0xff, 0xff, 0xff, 0xff, 0x41},  // str32 of 4G
      {0xdf, 0xff, 0xff, 0xff, 0xff},        // map32 of 4G
      {0xc1},
      {0x9b},
  };
  for (const auto& h : hostile) {
    auto r = DecodeEntry(h);
    CHECK_FALSE(r.ok());
    CHECK(FuzzDecodeEntry(h.data(), h.size()) == 0);
  }
  std::vector<uint8_t> deep(10000, 0x91);
  deep.push_back(0xc0);
  CHECK(DecodeEntry(deep).status().code() == Code::kLimitExceeded);
  std::vector<uint8_t> trailing = EncodeEntry(Sample());
  trailing.push_back(0x00);
  CHECK(DecodeEntry(trailing).status().code() == Code::kCorruption);
}

TEST_CASE("EntryCodec: mutated encodings never crash the decoder", "[entry_codec][property]") {
  GOSSYNC_SEEDED_RNG(0xf022);
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bytes = EncodeEntry(RandomEntry(rng));
    for (int m = 0, n = 1 + static_cast<int>(rng() % 4); m < n; ++m) {
      size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<uint8_t>(rng());
          break;
        case 1:
          bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        case 2:
          bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                       static_cast<uint8_t>(rng()));
          break;
      }
      if (bytes.empty()) bytes.push_back(0);
    }
    REQUIRE(FuzzDecodeEntry(bytes.data(), bytes.size()) == 0);
    accepted += DecodeEntry(bytes).ok();
  }
  CHECK(accepted > 0);  // some mutations still decode (e.g. a changed hlc byte)
}

}  // namespace
}  // namespace gossync::wire
