#include "agent/io/timer.h"

#include <catch2/catch.hpp>

#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::NewLoop;

TEST_CASE("Timer: a one-shot timer fires once", "[io][timer]") {
  auto loop = NewLoop();
  int fired = 0;
  auto timer = Timer::Create(loop->get());
  timer->Start(5, [&] { ++fired; });
  CHECK(timer->active());
  loop->Run();
  CHECK(fired == 1);
  CHECK_FALSE(timer->active());
}

TEST_CASE("Timer: a repeating timer fires until stopped", "[io][timer]") {
  auto loop = NewLoop();
  int fired = 0;
  auto timer = Timer::Create(loop->get());
  timer->Start(1, 1, [&] {
    if (++fired == 5) timer->Stop();
  });
  loop->Run();
  CHECK(fired == 5);
  CHECK_FALSE(timer->active());
}

TEST_CASE("Timer: Stop before expiry means no callback", "[io][timer]") {
  auto loop = NewLoop();
  int fired = 0;
  auto timer = Timer::Create(loop->get());
  timer->Start(1, [&] { ++fired; });
  timer->Stop();
  timer->Stop();  // idempotent
  loop->Run();
  CHECK(fired == 0);
}

TEST_CASE("Timer: re-arming replaces the pending callback", "[io][timer]") {
  auto loop = NewLoop();
  int first = 0, second = 0;
  auto timer = Timer::Create(loop->get());
  timer->Start(1000, [&] { ++first; });
  timer->Start(1, [&] { ++second; });
  loop->Run();
  CHECK(first == 0);
  CHECK(second == 1);
}

TEST_CASE("Timer: the callback may re-arm the timer", "[io][timer]") {
  auto loop = NewLoop();
  int fired = 0;
  auto timer = Timer::Create(loop->get());
  std::function<void()> again = [&] {
    if (++fired < 3) timer->Start(1, again);
  };
  timer->Start(1, again);
  loop->Run();
  CHECK(fired == 3);
}

TEST_CASE("Timer: the callback may destroy the timer", "[io][timer]") {
  auto loop = NewLoop();
  int fired = 0;
  auto timer = Timer::Create(loop->get());
  std::string captured(100, 'x');  // makes the callback own heap memory ASan can watch
  timer->Start(1, 1, [&, captured] {
    ++fired;
    timer.reset();
    CHECK(captured.size() == 100);  // still valid after the owner is gone
  });
  loop->Run();
  CHECK(fired == 1);
  CHECK(timer == nullptr);
}

TEST_CASE("Timer: Close is idempotent and stops callbacks and states are explicit",
          "[io][timer][handle]") {
  auto loop = NewLoop();
  int fired = 0;
  auto timer = Timer::Create(loop->get());
  CHECK(timer->state() == Handle::State::kOpen);
  timer->Start(1, [&] { ++fired; });
  timer->Close();
  CHECK(timer->state() == Handle::State::kClosing);
  timer->Close();
  CHECK(timer->state() == Handle::State::kClosing);
  loop->Run();
  CHECK(timer->state() == Handle::State::kClosed);
  CHECK(fired == 0);
  timer->Stop();  // harmless once closed
  CHECK_FALSE(timer->active());
}

TEST_CASE("Timer: destroying an armed timer frees it in the close callback",
          "[io][timer][handle]") {
  auto loop = NewLoop();
  int fired = 0;
  {
    auto timer = Timer::Create(loop->get());
    timer->Start(1, [&] { ++fired; });
  }
  loop->Run();  // runs the close callback; ASan reports a leak or use-after-free
  CHECK(fired == 0);
}

TEST_CASE("Loop: RunUntil returns false at the deadline and true once done", "[io][loop]") {
  auto loop = NewLoop();
  CHECK_FALSE(loop->RunUntil([] { return false; }, 5));
  bool flag = false;
  auto timer = Timer::Create(loop->get());
  timer->Start(2, [&] { flag = true; });
  CHECK(loop->RunUntil([&] { return flag; }, testing::kDeadlineMs));
}

}  // namespace
}  // namespace gossync::io
