#include "agent/wire/repair_codec.h"

#include <catch2/catch.hpp>
#include <msgpack.hpp>
#include <random>

#include "agent/core/path.h"
#include "agent/wire/frame.h"
#include "tests/unit/core/seed.h"

namespace gossync::wire {
namespace {

using namespace core;

Hash256 H(std::string_view s) { return Sha256(s); }

Entry SampleEntry(int i) {
  Entry e;
  e.path = "dir/file-" + std::to_string(i) + ".txt";
  e.mode = 0644;
  e.size = 100 + i;
  e.mtime_ns = 1700000000000000000 + i;
  e.hash = H(std::to_string(i));
  e.vv = VersionVector({{1, 3}, {7, static_cast<uint64_t>(i + 1)}});
  e.hlc = 0x123456789 + i;
  e.origin = "alpha";
  return e;
}

// One message of every type, with non-trivial contents.
std::vector<RepairMessage> AllMessages(std::mt19937_64& rng) {
  std::vector<RepairMessage> out;
  out.push_back(HelloMsg{1, "node-a", 4, H("root"), rng(), rng(), kHelloDryRun | kHelloCatchUp});
  NodesMsg nodes{3, {}};
  for (int i = 0; i < 5; ++i) {
    NodeItem it{static_cast<uint32_t>(rng() % 4096), {}};
    for (auto& d : it.digests) d = rng() % 3 ? rng() : 0;
    nodes.items.push_back(it);
  }
  out.push_back(nodes);
  LeavesMsg leaves;
  leaves.items.push_back({17, {}});  // an empty bucket
  leaves.items.push_back({65535, {{rng(), rng()}, {rng(), 0}}});
  out.push_back(leaves);
  out.push_back(EntriesMsg{{SampleEntry(1), SampleEntry(2), SampleEntry(3)}});
  out.push_back(EntriesMsg{});
  out.push_back(WantMsg{{rng(), rng(), 0, UINT64_MAX}});
  out.push_back(BlockListReqMsg{7, "a/b c/\xc3\xa9.bin", H("content")});
  out.push_back(BlockListMsg{7, 1 << 30, 131072, 4096, {H("1"), H("2"), H("3")}, true});
  out.push_back(BlockReqMsg{UINT32_MAX, "x", H("c"), {0, 5, UINT32_MAX}});
  std::vector<uint8_t> data(rng() % 5000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  out.push_back(BlockMsg{9, 3, data});
  out.push_back(BlockMsg{9, 4, {}});
  out.push_back(ReqErrorMsg{9, static_cast<uint8_t>(ReqErrorCode::kChanged), "changed on disk"});
  out.push_back(FinMsg{});
  out.push_back(FinAckMsg{});
  out.push_back(AbortMsg{"bad_path: '../x'"});
  out.push_back(UnknownMsg{200});
  return out;
}

TEST_CASE("RepairCodec: every message survives the round trip", "[repair_codec]") {
  GOSSYNC_SEEDED_RNG(0x5e55);
  for (int round = 0; round < 20; ++round) {
    for (const RepairMessage& m : AllMessages(rng)) {
      INFO(MessageName(m));
      std::vector<uint8_t> body = EncodeMessage(m);
      auto back = DecodeMessage(body);
      REQUIRE(back.ok());
      CHECK(*back == m);
      CHECK(FuzzDecodeMessage(body.data(), body.size()) == 0);
      // The frame is the 4-byte length and the same body.
      std::vector<uint8_t> frame = EncodeMessageFrame(m);
      CHECK(frame == EncodeFrame(body));
    }
  }
}

TEST_CASE("RepairCodec: a known type with the wrong shape names the message and the field",
          "[repair_codec]") {
  auto pack = [](auto&& fill) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    fill(pk);
    return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()),
                                reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
  };
  // NODES with a str for a prefix.
  auto bad_prefix = pack([](auto& pk) {
    pk.pack_array(3);
    pk.pack(1);
    pk.pack(2);
    pk.pack_array(1);
    pk.pack_array(2);
    pk.pack(std::string("zero"));
    pk.pack_bin(128);
    pk.pack_bin_body(std::string(128, '\0').data(), 128);
  });
  auto r = DecodeMessage(bad_prefix);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("NODES.items") != std::string::npos);
  CHECK(r.status().message().find("prefix") != std::string::npos);
  CHECK(std::string(DecodeErrorCounter(r.status())) == "malformed");

  // HELLO with a field missing.
  auto short_hello = pack([](auto& pk) {
    pk.pack_array(3);
    pk.pack(0);
    pk.pack(1);
    pk.pack(std::string("a"));
  });
  r = DecodeMessage(short_hello);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("HELLO") != std::string::npos);

  // NODES digests of the wrong length.
  auto short_digests = pack([](auto& pk) {
    pk.pack_array(3);
    pk.pack(1);
    pk.pack(1);
    pk.pack_array(1);
    pk.pack_array(2);
    pk.pack(0);
    pk.pack_bin(8);
    pk.pack_bin_body("12345678", 8);
  });
  r = DecodeMessage(short_digests);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("digests") != std::string::npos);

  // A map anywhere, a negative type, no type at all.
  CHECK_FALSE(DecodeMessage(pack([](auto& pk) { pk.pack_map(0); })).ok());
  CHECK_FALSE(DecodeMessage(pack([](auto& pk) {
                pk.pack_array(1);
                pk.pack(-1);
              })).ok());
  CHECK_FALSE(DecodeMessage(pack([](auto& pk) { pk.pack_array(0); })).ok());
  // An entry that fails ValidateEntry: named with its index.
  Entry e = SampleEntry(1);
  e.path = "../x";
  auto bad_entry = EncodeMessage(EntriesMsg{{SampleEntry(0), e}});
  r = DecodeMessage(bad_entry);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("ENTRIES.entries[1]") != std::string::npos);
}

TEST_CASE("RepairCodec: an unknown type decodes as such, whatever follows it", "[repair_codec]") {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(3);
  pk.pack(13);
  pk.pack(std::string("future"));
  pk.pack_array(1);
  pk.pack(1);
  auto r = DecodeMessage(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()), buf.size()));
  REQUIRE(r.ok());
  REQUIRE(std::holds_alternative<UnknownMsg>(*r));
  CHECK(std::get<UnknownMsg>(*r).type == 13);
}

TEST_CASE("RepairCodec: the per-message limits are enforced", "[repair_codec]") {
  auto code_of = [](const RepairMessage& m, size_t max_frame = kDefaultMaxFrameBytes) {
    return DecodeMessage(EncodeMessage(m), max_frame).status().code();
  };
  NodesMsg nodes{1, std::vector<NodeItem>(kMaxNodesItems)};
  CHECK(code_of(nodes) == Code::kOk);
  nodes.items.emplace_back();
  CHECK(code_of(nodes) == Code::kLimitExceeded);

  EntriesMsg entries;
  for (size_t i = 0; i <= kMaxEntriesItems; ++i) entries.entries.push_back(SampleEntry(1));
  CHECK(code_of(entries) == Code::kLimitExceeded);
  entries.entries.pop_back();
  CHECK(code_of(entries) == Code::kOk);

  WantMsg want{std::vector<uint64_t>(kMaxWantKeys + 1)};
  CHECK(code_of(want) == Code::kLimitExceeded);
  want.keys.pop_back();
  CHECK(code_of(want) == Code::kOk);

  BlockReqMsg req{1, "a", H("a"), std::vector<uint32_t>(kMaxBlockReqIndexes + 1)};
  CHECK(code_of(req) == Code::kLimitExceeded);

  LeavesMsg leaves;
  leaves.items.push_back({0, std::vector<KeyDigest>(kMaxLeafPairs / 2)});
  leaves.items.push_back({1, std::vector<KeyDigest>(kMaxLeafPairs / 2 + 1)});
  CHECK(code_of(leaves) == Code::kLimitExceeded);

  BlockListMsg list{1, 0, 4096, 0, std::vector<Hash256>(kMaxBlockListHashes + 1), true};
  CHECK(code_of(list) == Code::kLimitExceeded);

  BlockMsg block{1, 0, std::vector<uint8_t>(1000)};
  CHECK(code_of(block, 999) == Code::kLimitExceeded);
  CHECK(code_of(block, 1000) == Code::kOk);

  AbortMsg abort{std::string(kMaxReasonBytes + 1, 'x')};
  CHECK(code_of(abort) == Code::kLimitExceeded);
  HelloMsg hello{1, std::string(64, 'a'), 4, {}, 0, 0, 0};
  CHECK(code_of(hello) == Code::kLimitExceeded);
  BlockListReqMsg path_too_long{1, std::string(kMaxPathBytes + 1, 'a'), {}};
  CHECK(code_of(path_too_long) == Code::kLimitExceeded);
}

TEST_CASE("RepairCodec: mutated and random input never crashes", "[repair_codec][property]") {
  GOSSYNC_SEEDED_RNG(0xf022);
  std::vector<std::vector<uint8_t>> corpus;
  for (const RepairMessage& m : AllMessages(rng)) corpus.push_back(EncodeMessage(m));
  size_t decoded = 0;
  for (int i = 0; i < 50000; ++i) {
    std::vector<uint8_t> bytes = corpus[rng() % corpus.size()];
    switch (rng() % 4) {
      case 0:  // flip bytes
        for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n && !bytes.empty(); ++k) {
          bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
        }
        break;
      case 1:  // truncate
        bytes.resize(rng() % (bytes.size() + 1));
        break;
      case 2:  // a huge length somewhere
        if (bytes.size() > 5) {
          const size_t at = rng() % (bytes.size() - 5);
          bytes[at] = rng() % 2 ? 0xdd : 0xc6;  // array32 / bin32
          for (int k = 1; k <= 4; ++k) bytes[at + k] = 0xff;
        }
        break;
      default:  // noise
        bytes.resize(rng() % 64);
        for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    }
    FuzzDecodeMessage(bytes.data(), bytes.size());  // CHECKs the round trip
    decoded += DecodeMessage(bytes).ok();
  }
  INFO("decoded " << decoded);
  CHECK(decoded > 0);
}

// ---- Framing ----

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST_CASE("FrameDecoder: frames come out whole whatever the chunking", "[frame]") {
  GOSSYNC_SEEDED_RNG(0xf4a3e);
  std::vector<std::vector<uint8_t>> bodies;
  std::vector<uint8_t> stream;
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> body(1 + rng() % 3000);
    for (auto& b : body) b = static_cast<uint8_t>(rng());
    auto frame = EncodeFrame(body);
    stream.insert(stream.end(), frame.begin(), frame.end());
    bodies.push_back(std::move(body));
  }
  for (int round = 0; round < 20; ++round) {
    FrameDecoder dec;
    std::vector<std::vector<uint8_t>> got;
    size_t pos = 0;
    while (pos < stream.size()) {
      const size_t n = std::min(stream.size() - pos, size_t{1} + rng() % (round < 5 ? 3 : 5000));
      REQUIRE(dec.Feed(std::span<const uint8_t>(stream.data() + pos, n), &got).ok());
      pos += n;
    }
    CHECK(got == bodies);
    CHECK(dec.buffered() == 0);
    CHECK(dec.Finish().ok());
  }
}

TEST_CASE("FrameDecoder: an oversized frame is refused from its header, and the error sticks",
          "[frame]") {
  FrameDecoder dec(1000);
  std::vector<std::vector<uint8_t>> got;
  auto ok = EncodeFrame(std::vector<uint8_t>(1000, 1));
  REQUIRE(dec.Feed(ok, &got).ok());
  CHECK(got.size() == 1);
  // The 4 header bytes alone are enough to refuse 1001 bytes.
  std::vector<uint8_t> header = {0, 0, 0x03, 0xe9};
  Status s = dec.Feed(header, &got);
  CHECK(s.code() == Code::kLimitExceeded);
  CHECK(s.message().find("frame_too_large") != std::string::npos);
  CHECK(dec.buffered() == 4);
  CHECK(dec.Feed(ok, &got).code() == Code::kLimitExceeded);
  CHECK(got.size() == 1);
  CHECK_FALSE(dec.Finish().ok());

  // 4 GiB announced: refused, nothing allocated for it.
  FrameDecoder big;
  std::vector<uint8_t> huge = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
  CHECK(big.Feed(huge, &got).code() == Code::kLimitExceeded);
}

TEST_CASE("FrameDecoder: a body grows only with the bytes that came", "[frame]") {
  FrameDecoder dec;  // 4 MiB limit
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint8_t> header = {0, 0x40, 0, 0};  // 4 MiB announced
  REQUIRE(dec.Feed(header, &got).ok());
  REQUIRE(dec.Feed(Bytes("abc"), &got).ok());
  CHECK(dec.buffered() == 7);
  Status end = dec.Finish();
  CHECK(end.code() == Code::kCorruption);
  CHECK(end.message().find("truncated") != std::string::npos);
}

TEST_CASE("FrameDecoder: an empty frame and a cut header are errors", "[frame]") {
  FrameDecoder dec;
  std::vector<std::vector<uint8_t>> got;
  CHECK(dec.Feed(std::vector<uint8_t>{0, 0, 0, 0}, &got).code() == Code::kCorruption);
  FrameDecoder dec2;
  REQUIRE(dec2.Feed(std::vector<uint8_t>{0, 0}, &got).ok());
  CHECK(dec2.Finish().message().find("header") != std::string::npos);
}

}  // namespace
}  // namespace gossync::wire
