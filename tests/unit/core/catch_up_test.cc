#include "agent/core/catch_up.h"

#include <catch2/catch.hpp>

#include "agent/core/hlc.h"
#include "agent/core/repair_messages.h"

namespace gossync::core {
namespace {

constexpr uint64_t kTtl = 30ull * 24 * 3600 * 1000;
constexpr uint64_t kNow = 1'800'000'000'000;

TEST_CASE("CatchUp: the mode follows the last sync point and the ttl", "[catch_up]") {
  CHECK(ModeAt(SyncPoint{}, kNow, kTtl) == SyncMode::kNew);
  // Catch-up begins a day before a 30-day ttl runs out (a tenth of a short one).
  CHECK(CatchUpGraceMs(kTtl) == 24ull * 3600 * 1000);
  CHECK(CatchUpGraceMs(60'000) == 6'000);
  const uint64_t limit = kTtl - CatchUpGraceMs(kTtl);
  CHECK(ModeAt(SyncPoint{kNow - limit, 5}, kNow, kTtl) == SyncMode::kCurrent);
  CHECK(ModeAt(SyncPoint{kNow - limit - 1, 5}, kNow, kTtl) == SyncMode::kCatchUp);
  CHECK(ModeAt(SyncPoint{kNow + 1000, 5}, kNow, kTtl) == SyncMode::kCurrent);  // clock stepped back
  CHECK(ModeAt(SyncPoint{1, 5}, kNow, 0) == SyncMode::kCurrent);               // nothing expires
  CHECK(std::string(SyncModeName(SyncMode::kCatchUp)) == "catch_up");
}

TEST_CASE("CatchUp: HELLO flags, and which peers count", "[catch_up]") {
  CHECK(HelloFlagsFor(SyncMode::kCurrent) == 0);
  CHECK(HelloFlagsFor(SyncMode::kCatchUp) == kHelloCatchUp);
  CHECK(HelloFlagsFor(SyncMode::kNew) == kHelloUnsynced);
  CHECK(PeerIsCurrent(0));
  CHECK(PeerIsCurrent(kHelloDryRun));
  CHECK_FALSE(PeerIsCurrent(kHelloCatchUp));
  CHECK_FALSE(PeerIsCurrent(kHelloUnsynced));
  CHECK(PeerIsCurrent(1u << 7));  // unknown bits of a newer peer say nothing
}

TEST_CASE("CatchUp: which finished sessions make a node current", "[catch_up]") {
  const uint32_t current = 0, catching = kHelloCatchUp, fresh = kHelloUnsynced;
  // A catching-up node only through a current peer.
  CHECK(SessionIsSyncPoint(SyncMode::kCatchUp, current));
  CHECK_FALSE(SessionIsSyncPoint(SyncMode::kCatchUp, catching));
  CHECK_FALSE(SessionIsSyncPoint(SyncMode::kCatchUp, fresh));
  // A new or current node through any peer that is not catching up.
  for (SyncMode m : {SyncMode::kNew, SyncMode::kCurrent}) {
    CHECK(SessionIsSyncPoint(m, current));
    CHECK(SessionIsSyncPoint(m, fresh));
    CHECK_FALSE(SessionIsSyncPoint(m, catching));
  }
}

TEST_CASE("CatchUp: a version expires once its HLC is older than the ttl", "[catch_up]") {
  const uint64_t at = Hlc::Pack(kNow - kTtl, 7);
  CHECK_FALSE(OlderThanTtl(at, kNow, kTtl));
  CHECK(OlderThanTtl(Hlc::Pack(kNow - kTtl - 1, 0xffff), kNow, kTtl));
  CHECK_FALSE(OlderThanTtl(Hlc::Pack(kNow, 0), kNow, kTtl));
  CHECK_FALSE(OlderThanTtl(0, kNow, 0));         // ttl 0: never
  CHECK_FALSE(OlderThanTtl(0, kTtl - 1, kTtl));  // a clock before the epoch + ttl
  CHECK(OlderThanTtl(0, kTtl + 1, kTtl));
}

}  // namespace
}  // namespace gossync::core
