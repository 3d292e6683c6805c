#include "agent/tls/seal.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "agent/tls/keyring.h"

namespace gossync::tls {
namespace {

Keyring Ring(std::vector<GossipKeyBytes> keys) {
  auto r = Keyring::FromKeys(keys);
  REQUIRE(r.ok());
  return std::move(*r);
}

GossipKeyBytes RandomKey(std::mt19937_64& rng) {
  GossipKeyBytes k;
  for (auto& b : k) b = static_cast<uint8_t>(rng());
  return k;
}

std::vector<uint8_t> RandomBytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<uint8_t> MustSeal(const Keyring& ring, const std::vector<uint8_t>& plaintext) {
  std::vector<uint8_t> packet;
  Status s = Seal(ring, plaintext, &packet);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return packet;
}

OpenError OpenReason(const Keyring& ring, const std::vector<uint8_t>& packet,
                     std::vector<uint8_t>* out = nullptr) {
  std::vector<uint8_t> plain;
  Status s = Open(ring, packet, &plain);
  if (!s.ok()) CHECK(plain.empty());
  if (out != nullptr) *out = plain;
  return ClassifyOpenError(s);
}

struct Seeded {
  Seeded() {
    seed = std::random_device{}();
    rng.seed(seed);
  }
  uint64_t seed;
  std::mt19937_64 rng;
};

TEST_CASE("Seal: a sealed packet opens to its plaintext", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  Keyring ring = Ring({RandomKey(s.rng)});
  for (size_t n : {0, 1, 15, 16, 17, 100, 1167, 4096}) {
    auto plain = RandomBytes(s.rng, n);
    auto packet = MustSeal(ring, plain);
    REQUIRE(packet.size() == n + kSealOverhead);
    CHECK(packet[0] == kSealVersion);
    CHECK(std::equal(packet.begin() + 1, packet.begin() + 5, ring.primary().id.begin()));
    std::vector<uint8_t> out;
    CHECK(OpenReason(ring, packet, &out) == OpenError::kNone);
    CHECK(out == plain);
  }
}

TEST_CASE("Seal: every packet gets a fresh nonce", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  Keyring ring = Ring({RandomKey(s.rng)});
  std::vector<uint8_t> plain(50, 7);
  std::set<std::vector<uint8_t>> nonces, packets;
  for (int i = 0; i < 1000; ++i) {
    auto p = MustSeal(ring, plain);
    nonces.emplace(p.begin() + 5, p.begin() + 17);
    packets.insert(p);
  }
  CHECK(nonces.size() == 1000);
  CHECK(packets.size() == 1000);
}

TEST_CASE("Seal: changing any single byte of a packet makes it fail to open", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  Keyring ring = Ring({RandomKey(s.rng)});
  auto packet = MustSeal(ring, RandomBytes(s.rng, 120));
  for (size_t pos = 0; pos < packet.size(); ++pos) {
    for (uint8_t mask :
         {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}, static_cast<uint8_t>(1 + s.rng() % 255)}) {
      auto bad = packet;
      bad[pos] ^= mask;
      OpenError want = pos == 0  ? OpenError::kUnknownVersion
                       : pos < 5 ? OpenError::kUnknownKeyId
                                 : OpenError::kAuthFailed;
      INFO("byte " << pos << " mask " << int{mask});
      CHECK(OpenReason(ring, bad) == want);
    }
  }
  CHECK(OpenReason(ring, packet) == OpenError::kNone);
}

TEST_CASE("Seal: a truncated or extended packet fails to open", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  Keyring ring = Ring({RandomKey(s.rng)});
  auto packet = MustSeal(ring, RandomBytes(s.rng, 64));
  for (size_t n = 0; n < packet.size(); ++n) {
    std::vector<uint8_t> cut(packet.begin(), packet.begin() + static_cast<long>(n));
    INFO("length " << n);
    CHECK(OpenReason(ring, cut) ==
          (n < kSealOverhead ? OpenError::kTooShort : OpenError::kAuthFailed));
  }
  auto longer = packet;
  longer.push_back(0);
  CHECK(OpenReason(ring, longer) == OpenError::kAuthFailed);
  std::vector<uint8_t> huge(kMaxSealedPacket + 1, 1);
  CHECK(OpenReason(ring, huge) == OpenError::kTooLong);
  std::vector<uint8_t> out;
  CHECK(Seal(ring, std::vector<uint8_t>(kMaxSealPlaintext + 1), &out).code() ==
        Code::kLimitExceeded);
  CHECK(Seal(ring, std::vector<uint8_t>(kMaxSealPlaintext), &out).ok());
  CHECK(out.size() == kMaxSealedPacket);
}

TEST_CASE("Seal: open errors are distinct so drops can be counted by reason", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  Keyring ring = Ring({RandomKey(s.rng)});
  std::vector<uint8_t> out;
  Status short_s = Open(ring, std::vector<uint8_t>(10), &out);
  auto packet = MustSeal(ring, {1, 2, 3});
  auto v2 = packet;
  v2[0] = 2;
  Status version_s = Open(ring, v2, &out);
  Keyring other = Ring({RandomKey(s.rng)});
  Status key_s = Open(other, packet, &out);
  auto tampered = packet;
  tampered.back() ^= 1;
  Status auth_s = Open(ring, tampered, &out);
  std::set<Code> codes{short_s.code(), version_s.code(), key_s.code(), auth_s.code()};
  CHECK(codes.size() == 4);
  CHECK(ClassifyOpenError(short_s) == OpenError::kTooShort);
  CHECK(ClassifyOpenError(version_s) == OpenError::kUnknownVersion);
  CHECK(ClassifyOpenError(key_s) == OpenError::kUnknownKeyId);
  CHECK(ClassifyOpenError(auth_s) == OpenError::kAuthFailed);
  CHECK_THAT(version_s.message(), Catch::Contains("version 2"));
  CHECK_THAT(key_s.message(), Catch::Contains(KeyIdHex(ring.primary().id)));
  CHECK(std::string(OpenErrorName(OpenError::kUnknownKeyId)) == "unknown_key_id");
}

TEST_CASE("Seal: a packet relabelled with another key's id fails authentication", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  Keyring sealer = Ring({RandomKey(s.rng)});
  Keyring opener = Ring({RandomKey(s.rng)});
  auto packet = MustSeal(sealer, {9, 9, 9, 9});
  std::copy(opener.primary().id.begin(), opener.primary().id.end(), packet.begin() + 1);
  CHECK(OpenReason(opener, packet) == OpenError::kAuthFailed);
}

TEST_CASE("Seal: rotation: [new, old] opens both, [old] opens only old", "[tls][seal]") {
  Seeded s;
  INFO("seed " << s.seed);
  GossipKeyBytes old_key = RandomKey(s.rng), new_key = RandomKey(s.rng);
  Keyring old_ring = Ring({old_key});
  Keyring rotated = Ring({new_key, old_key});
  Keyring new_ring = Ring({new_key});
  std::vector<uint8_t> msg{'g', 'o', 's', 's', 'i', 'p'};

  auto from_old = MustSeal(old_ring, msg);
  auto from_rotated = MustSeal(rotated, msg);
  auto from_new = MustSeal(new_ring, msg);
  // The primary seals.
  CHECK(std::equal(from_rotated.begin() + 1, from_rotated.begin() + 5,
                   new_ring.primary().id.begin()));

  std::vector<uint8_t> out;
  CHECK(OpenReason(rotated, from_old, &out) == OpenError::kNone);
  CHECK(out == msg);
  CHECK(OpenReason(rotated, from_new, &out) == OpenError::kNone);
  CHECK(out == msg);
  CHECK(OpenReason(rotated, from_rotated, &out) == OpenError::kNone);
  CHECK(OpenReason(old_ring, from_old) == OpenError::kNone);
  CHECK(OpenReason(old_ring, from_new) == OpenError::kUnknownKeyId);
  CHECK(OpenReason(old_ring, from_rotated) == OpenError::kUnknownKeyId);
  CHECK(OpenReason(new_ring, from_old) == OpenError::kUnknownKeyId);
}

}  // namespace
}  // namespace gossync::tls
