#include "agent/io/signal.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::kDeadlineMs;
using testing::NewLoop;

TEST_CASE("SignalHandler: SIGHUP, SIGTERM and SIGINT reach their callbacks on the loop",
          "[io][signal]") {
  auto loop = NewLoop();
  std::vector<int> seen;
  std::vector<std::unique_ptr<SignalHandler>> handlers;
  for (int sig : {SIGHUP, SIGTERM, SIGINT}) {
    auto h = SignalHandler::Create(loop->get(), sig, [&](int s) { seen.push_back(s); });
    REQUIRE(h.ok());
    CHECK((*h)->signum() == sig);
    handlers.push_back(std::move(h).value());
  }
  REQUIRE(kill(getpid(), SIGHUP) == 0);
  REQUIRE(loop->RunUntil([&] { return seen.size() == 1; }, kDeadlineMs));
  REQUIRE(kill(getpid(), SIGTERM) == 0);
  REQUIRE(loop->RunUntil([&] { return seen.size() == 2; }, kDeadlineMs));
  REQUIRE(kill(getpid(), SIGINT) == 0);
  REQUIRE(loop->RunUntil([&] { return seen.size() == 3; }, kDeadlineMs));
  CHECK(seen == std::vector<int>{SIGHUP, SIGTERM, SIGINT});
}

TEST_CASE("SignalHandler: a closed handler receives nothing", "[io][signal][handle]") {
  auto loop = NewLoop();
  int hups = 0, closed_hups = 0;
  auto keep = SignalHandler::Create(loop->get(), SIGHUP, [&](int) { ++hups; });
  auto closed = SignalHandler::Create(loop->get(), SIGHUP, [&](int) { ++closed_hups; });
  REQUIRE(keep.ok());
  REQUIRE(closed.ok());
  (*closed)->Close();
  REQUIRE(kill(getpid(), SIGHUP) == 0);
  REQUIRE(loop->RunUntil([&] { return hups == 1; }, kDeadlineMs));
  CHECK(closed_hups == 0);
}

TEST_CASE("IgnoreSigpipe: SIGPIPE no longer kills the process", "[io][signal]") {
  IgnoreSigpipe();
  IgnoreSigpipe();  // idempotent
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  close(fds[0]);
  errno = 0;
  CHECK(write(fds[1], "x", 1) == -1);
  CHECK(errno == EPIPE);
  close(fds[1]);
}

}  // namespace
}  // namespace gossync::io
