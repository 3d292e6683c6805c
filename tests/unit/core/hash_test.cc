#include "agent/core/hash.h"

#include <catch2/catch.hpp>
#include <string>

namespace gossync::core {
namespace {

TEST_CASE("Sha256: known answers", "[hash]") {
  CHECK(ToHex(Sha256(std::string_view(""))) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(ToHex(Sha256(std::string_view("abc"))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("Sha256Hasher: incremental equals one-shot and resets after Finish", "[hash]") {
  std::string data(10000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  Sha256Hasher h;
  for (size_t i = 0; i < data.size(); i += 333) h.Update(std::string_view(data).substr(i, 333));
  CHECK(h.Finish() == Sha256(data));
  h.Update(std::string_view("abc"));
  CHECK(h.Finish() == Sha256(std::string_view("abc")));
  CHECK(h.Finish() == Sha256(std::string_view("")));
}

TEST_CASE("Hex: round trip and rejects malformed input", "[hash]") {
  Hash256 h = Sha256(std::string_view("x"));
  Hash256 back{};
  REQUIRE(FromHex(ToHex(h), &back));
  CHECK(back == h);
  std::string upper = ToHex(h);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  REQUIRE(FromHex(upper, &back));
  CHECK(back == h);
  Hash256 untouched = kZeroHash;
  CHECK_FALSE(FromHex("", &untouched));
  CHECK_FALSE(FromHex(ToHex(h).substr(1), &untouched));
  CHECK_FALSE(FromHex(ToHex(h) + "0", &untouched));
  CHECK_FALSE(FromHex(std::string(63, '0') + "g", &untouched));
  CHECK(IsZero(untouched));
  CHECK_FALSE(IsZero(h));
  const uint8_t bytes[] = {0x00, 0xff, 0x10};
  CHECK(ToHex(std::span<const uint8_t>(bytes)) == "00ff10");
}

}  // namespace
}  // namespace gossync::core
