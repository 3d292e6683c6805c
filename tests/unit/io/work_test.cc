#include "agent/io/work.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::kDeadlineMs;
using testing::NewLoop;

// Keeps a pool thread busy for a little while, so that overlapping items would be seen.
// Spins (never sleeps) for 200 us: a window, not a synchronization.
void Busy() {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  while (std::chrono::steady_clock::now() < until) {
  }
}

TEST_CASE("QueueWork: work runs on the pool and after on the loop thread", "[io][work]") {
  auto loop = NewLoop();
  const auto loop_thread = std::this_thread::get_id();
  constexpr int kItems = 16;
  std::atomic<int> worked{0};
  std::atomic<int> on_loop_thread{0};
  int afters = 0, afters_on_loop = 0;
  for (int i = 0; i < kItems; ++i) {
    REQUIRE(QueueWork(
                loop->get(),
                [&] {
                  Busy();
                  if (std::this_thread::get_id() == loop_thread) ++on_loop_thread;
                  ++worked;
                },
                [&] {
                  ++afters;
                  if (std::this_thread::get_id() == loop_thread) ++afters_on_loop;
                })
                .ok());
  }
  loop->Run();
  CHECK(worked == kItems);
  CHECK(on_loop_thread == 0);
  CHECK(afters == kItems);
  CHECK(afters_on_loop == kItems);
}

TEST_CASE("Strand: items run one at a time, in order, with after on the loop thread",
          "[io][work][strand]") {
  auto loop = NewLoop();
  const auto loop_thread = std::this_thread::get_id();
  Strand strand(loop->get());
  constexpr int kItems = 300;
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::vector<int> order;  // touched only by strand work: the strand is its lock
  std::vector<int> after_order;
  int afters_off_loop = 0;
  // Unrelated pool work at the same time, so the pool has every reason to run
  // strand items in parallel if the strand let it.
  std::atomic<int> noise{0};
  for (int i = 0; i < 32; ++i)
    REQUIRE(QueueWork(
                loop->get(),
                [&] {
                  Busy();
                  ++noise;
                },
                nullptr)
                .ok());
  for (int i = 0; i < kItems; ++i) {
    REQUIRE(strand
                .Post(
                    [&, i] {
                      int now = ++in_flight;
                      int seen = max_in_flight.load();
                      while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
                      }
                      Busy();
                      order.push_back(i);
                      --in_flight;
                    },
                    [&, i] {
                      after_order.push_back(i);
                      if (std::this_thread::get_id() != loop_thread) ++afters_off_loop;
                    })
                .ok());
  }
  CHECK(strand.pending() == kItems);
  loop->Run();
  CHECK(max_in_flight == 1);
  REQUIRE(order.size() == kItems);
  for (int i = 0; i < kItems; ++i) CHECK(order[i] == i);
  CHECK(after_order == order);
  CHECK(afters_off_loop == 0);
  CHECK(strand.pending() == 0);
  CHECK(noise == 32);
}

TEST_CASE("Strand: item N's after runs before item N+1's work", "[io][work][strand]") {
  auto loop = NewLoop();
  Strand strand(loop->get());
  std::vector<std::string> log;
  std::mutex mu;
  auto note = [&](std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(std::move(s));
  };
  for (int i = 0; i < 3; ++i) {
    REQUIRE(strand
                .Post([&, i] { note("work" + std::to_string(i)); },
                      [&, i] { note("after" + std::to_string(i)); })
                .ok());
  }
  loop->Run();
  CHECK(log == std::vector<std::string>{"work0", "after0", "work1", "after1", "work2", "after2"});
}

TEST_CASE("Strand: an after callback may post more items, which run in order",
          "[io][work][strand]") {
  auto loop = NewLoop();
  Strand strand(loop->get());
  std::vector<std::string> log;
  std::mutex mu;
  auto note = [&](std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(std::move(s));
  };
  // Item a's after posts c while b is already queued: the order stays a, b, c.
  REQUIRE(strand
              .Post([&] { note("work-a"); },
                    [&] {
                      note("after-a");
                      REQUIRE(strand.Post([&] { note("work-c"); }, [&] { note("after-c"); })
                                  .ok());
                    })
              .ok());
  REQUIRE(strand.Post([&] { note("work-b"); }, [&] { note("after-b"); }).ok());
  loop->Run();
  CHECK(log == std::vector<std::string>{"work-a", "after-a", "work-b", "after-b", "work-c",
                                        "after-c"});
}

TEST_CASE("Strand: Drain runs every posted item, then done, and refuses new ones",
          "[io][work][strand]") {
  auto loop = NewLoop();
  Strand strand(loop->get());
  int works = 0, afters = 0, done = 0;
  int afters_at_done = -1;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(strand.Post([&] { ++works; }, [&] { ++afters; }).ok());
  }
  strand.Drain([&] {
    ++done;
    afters_at_done = afters;
  });
  CHECK(strand.draining());
  Status late = strand.Post([&] { ++works; });
  CHECK(late.code() == Code::kAborted);
  loop->Run();
  CHECK(works == 10);
  CHECK(afters == 10);
  CHECK(done == 1);
  CHECK(afters_at_done == 10);
  CHECK(strand.pending() == 0);
}

TEST_CASE("Strand: Drain with nothing pending calls done at once", "[io][work][strand]") {
  auto loop = NewLoop();
  Strand strand(loop->get());
  int done = 0;
  strand.Drain([&] { ++done; });
  CHECK(done == 1);
}

TEST_CASE("Strand: destroying it discards items not started and drops callbacks",
          "[io][work][strand]") {
  auto loop = NewLoop();
  std::atomic<int> works{0};
  int afters = 0;
  {
    Strand strand(loop->get());
    for (int i = 0; i < 10; ++i) REQUIRE(strand.Post([&] { ++works; }, [&] { ++afters; }).ok());
    CHECK(strand.pending() == 10);
  }
  loop->Run();  // the one item already on the pool finishes
  CHECK(works == 1);
  CHECK(afters == 0);
}

TEST_CASE("Strand: an after callback may destroy the strand", "[io][work][strand]") {
  auto loop = NewLoop();
  auto strand = std::make_unique<Strand>(loop->get());
  std::atomic<int> works{0};
  int afters = 0;
  REQUIRE(strand
              ->Post([&] { ++works; },
                     [&] {
                       ++afters;
                       strand.reset();
                     })
              .ok());
  REQUIRE(strand->Post([&] { ++works; }, [&] { ++afters; }).ok());
  loop->Run();
  CHECK(works == 1);
  CHECK(afters == 1);
  CHECK(strand == nullptr);
}

}  // namespace
}  // namespace gossync::io
