// The memory bounds of a repair session against a peer that offers much
// (issue 6): files to pull past max_queued_pulls wait for the next session,
// large pulls run together only while their block lists fit
// max_listed_blocks, and the sessions that follow still converge.
#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "agent/core/repair_session.h"
#include "tests/testutil/repair_harness.h"

namespace gossync::testutil {
namespace {

std::string Bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

bool Same(MemNode& a, MemNode& b) {
  return a.data().Root() == b.data().Root() && a.data().entries() == b.data().entries() &&
         a.data().contents() == b.data().contents();
}

// Sessions between a and b (alternating who initiates) until they agree;
// how many it took, or 0 if `max` were not enough.
int SessionsToConverge(MemNode& a, MemNode& b, const LinkOptions& o, int max,
                       uint64_t* deferred = nullptr) {
  for (int i = 1; i <= max; ++i) {
    Link link = i % 2 ? Link(a, b, o) : Link(b, a, o);
    link.Run();
    REQUIRE_FALSE(link.stalled());
    REQUIRE(link.a().finished);
    REQUIRE(link.b().finished);
    if (deferred) {
      *deferred += link.a().finished->stats.deferred + link.b().finished->stats.deferred;
    }
    if (Same(a, b)) return i;
  }
  return 0;
}

TEST_CASE("RepairSession: past max_queued_pulls files wait for the next session, which takes them",
          "[repair_session]") {
  std::mt19937_64 rng(0xb0d);
  MemNode full("alpha", 1), empty("beta", 2);
  for (int i = 0; i < 200; ++i) {
    full.WriteFile("d" + std::to_string(i % 9) + "/f" + std::to_string(i), Bytes(rng, 100 + i));
  }
  LinkOptions o;
  o.max_queued_pulls = 16;
  o.max_active_pulls = 4;
  {
    Link first(empty, full, o);
    first.Run();
    REQUIRE(first.a().finished);
    const core::SessionStats& s = first.a().finished->stats;
    INFO("pulled " << s.files_pulled << ", deferred " << s.deferred);
    CHECK(s.deferred > 0);
    CHECK(s.files_pulled < 200);
    CHECK(s.files_pulled >= 16);
  }
  uint64_t deferred = 0;
  int n = SessionsToConverge(full, empty, o, 40, &deferred);
  INFO("deferred in the later sessions: " << deferred);
  CHECK(n > 0);
}

TEST_CASE("RepairSession: large pulls run together only while their block lists fit",
          "[repair_session]") {
  std::mt19937_64 rng(0xb16);
  MemNode full("alpha", 1), empty("beta", 2);
  // 6 files of 40 blocks of 4 KiB; lists of at most 64 blocks: one at a time.
  for (int i = 0; i < 6; ++i) full.WriteFile("big" + std::to_string(i), Bytes(rng, 40 * 4096));
  LinkOptions o;
  o.max_listed_blocks = 64;
  Link link(empty, full, o);
  size_t lists_open = 0, most = 0;
  link.b().keep_received = true;
  // Count BLOCKLIST_REQs the puller has open at once, as the server sees them.
  link.b().on_frame = [&](const core::RepairMessage& m) {
    if (std::holds_alternative<core::BlockListReqMsg>(m)) most = std::max(most, ++lists_open);
    return false;
  };
  link.a().on_frame = [&](const core::RepairMessage& m) {
    if (auto* l = std::get_if<core::BlockListMsg>(&m); l && l->last) --lists_open;
    return false;
  };
  link.Run();
  REQUIRE(link.a().finished);
  CHECK(Same(full, empty));
  // A new list is asked for only once the previous file is done, so at most
  // one is open (with 4 allowed by max_active_large_pulls otherwise).
  CHECK(most == 1);

  // The default lets four run at once.
  MemNode empty2("gamma", 3);
  Link link2(empty2, full, LinkOptions{});
  lists_open = most = 0;
  link2.b().on_frame = link.b().on_frame;
  link2.a().on_frame = link.a().on_frame;
  link2.Run();
  REQUIRE(link2.a().finished);
  CHECK(most == 4);
}

}  // namespace
}  // namespace gossync::testutil
