#include "agent/core/broadcast_queue.h"

#include <catch2/catch.hpp>
#include <set>

#include "tests/unit/core/seed.h"

namespace gossync::core {
namespace {

MemberUpdate Alive(const std::string& name, uint64_t inc = 1) {
  return MemberUpdate{MemberState::kAlive, inc, MakeMemberInfo(name, "10.0.0.1:7946", ""), 7, {}};
}

std::vector<std::string> Names(const std::vector<MemberUpdate>& us) {
  std::vector<std::string> out;
  for (const auto& u : us) out.push_back(u.info->name);
  return out;
}

TEST_CASE("BroadcastQueue: an update supersedes the queued one about the same member",
          "[broadcast_queue]") {
  BroadcastQueue q(16);
  q.Enqueue(Alive("a", 1));
  std::vector<MemberUpdate> out;
  q.Fill(1000, 5, 64, &out);
  REQUIRE(q.Transmits("a") == 1);
  q.Enqueue(MemberUpdate{MemberState::kSuspect, 1, MakeMemberInfo("a", "", ""), 0, "b"});
  CHECK(q.size() == 1);
  CHECK(q.Transmits("a") == 0);  // the new update starts afresh
  CHECK(q.Find("a")->state == MemberState::kSuspect);
}

TEST_CASE("BroadcastQueue: fewest transmissions first, newest first among equals",
          "[broadcast_queue]") {
  BroadcastQueue q(16);
  q.Enqueue(Alive("a"));
  q.Enqueue(Alive("b"));
  q.Enqueue(Alive("c"));
  std::vector<MemberUpdate> out;
  q.Fill(1000, 5, 2, &out);
  CHECK(Names(out) == std::vector<std::string>{"c", "b"});
  out.clear();
  q.Fill(1000, 5, 2, &out);
  CHECK(Names(out) == std::vector<std::string>{"a", "c"});  // a has 0, c and b have 1
}

TEST_CASE("BroadcastQueue: an update leaves after transmit_limit transmissions",
          "[broadcast_queue]") {
  BroadcastQueue q(16);
  q.Enqueue(Alive("a"));
  for (int i = 0; i < 3; ++i) {
    std::vector<MemberUpdate> out;
    q.Fill(1000, 3, 64, &out);
    REQUIRE(out.size() == 1);
  }
  CHECK(q.empty());
  std::vector<MemberUpdate> out;
  CHECK(q.Fill(1000, 3, 64, &out) == 0);
  CHECK(out.empty());
}

TEST_CASE("BroadcastQueue: Fill stays within the byte budget and skips what does not fit",
          "[broadcast_queue]") {
  BroadcastQueue q(16);
  q.Enqueue(Alive("small"));
  q.Enqueue(Alive(std::string(60, 'x')));  // newest: first in line, and big
  size_t small = EncodedSize(Alive("small"));
  std::vector<MemberUpdate> out;
  size_t used = q.Fill(small + 1, 5, 64, &out);
  CHECK(Names(out) == std::vector<std::string>{"small"});
  CHECK(used == small);
  CHECK(q.Transmits(std::string(60, 'x')) == 0);
}

TEST_CASE("BroadcastQueue: the bound holds and the most-sent entry is evicted and counted",
          "[broadcast_queue]") {
  BroadcastQueue q(3);
  q.Enqueue(Alive("a"));
  std::vector<MemberUpdate> out;
  q.Fill(1000, 10, 64, &out);  // a: 1 transmission
  q.Enqueue(Alive("b"));
  q.Enqueue(Alive("c"));
  q.Enqueue(Alive("d"));
  CHECK(q.size() == 3);
  CHECK(q.evicted() == 1);
  CHECK(q.Find("a") == nullptr);
  for (int i = 0; i < 1000; ++i) q.Enqueue(Alive("m" + std::to_string(i)));
  CHECK(q.size() == 3);
  CHECK(q.evicted() == 1001);
}

TEST_CASE("BroadcastQueue: random operations keep its invariants", "[broadcast_queue]") {
  GOSSYNC_SEEDED_RNG(20240611);
  const size_t max = 20;
  BroadcastQueue q(max);
  for (int step = 0; step < 20000; ++step) {
    int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      std::string name = "n" + std::to_string(rng() % 40);
      q.Enqueue(Alive(name, rng() % 5));
    } else if (op < 9) {
      size_t budget = rng() % 600;
      int limit = 1 + static_cast<int>(rng() % 4);
      size_t max_count = 1 + rng() % 8;
      std::vector<MemberUpdate> out;
      size_t used = q.Fill(budget, limit, max_count, &out);
      size_t sum = 0;
      std::set<std::string> names;
      for (const auto& u : out) {
        sum += EncodedSize(u);
        REQUIRE(names.insert(u.info->name).second);  // no member twice in one packet
      }
      REQUIRE(sum == used);
      REQUIRE(used <= budget);
      REQUIRE(out.size() <= max_count);
    } else {
      std::string name = "n" + std::to_string(rng() % 40);
      q.Erase(name);
    }
    REQUIRE(q.size() <= max);
  }
}

}  // namespace
}  // namespace gossync::core
