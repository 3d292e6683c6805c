// HookRunner on a real loop with real /bin/sh processes.
#include "agent/daemon/hooks.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/daemon/logging.h"
#include "agent/io/signal.h"
#include "tests/unit/io/test_loop.h"

namespace gossync::daemon {
namespace {

using io::testing::NewLoop;
using io::testing::PollUntil;
namespace fs = std::filesystem;

struct Dir {
  fs::path path;
  Dir() {
    char tmpl[] = "/tmp/gossync-hooks-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~Dir() { fs::remove_all(path); }
};

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Number of runs a hook that appends "RUN\n" + stdin to `log` has made.
int Runs(const fs::path& log) {
  std::string text = Read(log);
  int n = 0;
  for (size_t at = text.find("RUN\n"); at != std::string::npos; at = text.find("RUN\n", at + 1)) {
    ++n;
  }
  return n;
}

// Logging at `level`, and SIGPIPE ignored: a hook that exits without reading
// its stdin must not kill the test (process.h).
void Setup(const char* level) {
  InitLogging(level);
  io::IgnoreSigpipe();
}

HookConfig Hook(std::string pattern, std::string command, uint32_t timeout_s = 10) {
  HookConfig h;
  h.pattern = std::move(pattern);
  h.command = std::move(command);
  h.timeout_s = timeout_s;
  return h;
}

TEST_CASE("HookRunner: matching paths of a batch run the hook once with the paths on stdin",
          "[hooks]") {
  Setup("warn");
  auto loop = NewLoop();
  Dir d;
  fs::path log = d.path / "log";
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 0;
  HookRunner r(loop->get(), o);
  REQUIRE(r.Configure({Hook("certs/", "{ echo RUN; cat; } >> log")}).ok());
  r.Applied(1, {"certs/b.pem", "other/x", "certs/a.pem", "certs"});
  r.Applied(2, {"other/y"});  // nothing matches: no run
  REQUIRE(PollUntil(*loop, [&] { return r.totals().succeeded == 1; }));
  CHECK(Read(log) == "RUN\ncerts/a.pem\ncerts/b.pem\n");
  CHECK(r.totals().runs == 1);
  CHECK(r.CountersJson()["hooks"][0]["last_exit"] == 0);
}

TEST_CASE("HookRunner: batches during a run coalesce into one more run", "[hooks]") {
  Setup("warn");
  auto loop = NewLoop();
  Dir d;
  fs::path log = d.path / "log";
  fs::path gate = d.path / "gate";
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 0;
  HookRunner r(loop->get(), o);
  // The first run waits for the gate file, so the next batches arrive while it runs.
  REQUIRE(r.Configure({Hook("*.conf",
                            "{ echo RUN; cat; } >> log; while [ ! -e gate ]; do "
                            "sleep 0.01; done")})
              .ok());
  r.Applied(1, {"a.conf"});
  REQUIRE(PollUntil(*loop, [&] { return Runs(log) == 1; }));
  r.Applied(2, {"b.conf"});
  r.Applied(3, {"c.conf", "b.conf"});
  r.Applied(4, {"d.conf"});
  CHECK(r.running() == 1);
  std::ofstream(gate).put('x');
  REQUIRE(PollUntil(*loop, [&] { return r.totals().succeeded == 2; }));
  CHECK(Read(log) == "RUN\na.conf\nRUN\nb.conf\nc.conf\nd.conf\n");
  CHECK(r.totals().runs == 2);
}

TEST_CASE("HookRunner: failures and timeouts are counted and later runs still happen", "[hooks]") {
  Setup("off");
  auto loop = NewLoop();
  Dir d;
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 0;
  HookRunner r(loop->get(), o);
  REQUIRE(r.Configure({Hook("fail/", "exit 3"), Hook("slow/", "exec sleep 30", 1)}).ok());
  r.Applied(1, {"fail/x", "slow/y"});
  REQUIRE(PollUntil(*loop, [&] { return r.totals().failed == 2; }));
  CHECK(r.totals().timeouts == 1);
  CHECK(r.CountersJson()["hooks"][0]["last_exit"] == 3);
  r.Applied(2, {"fail/z"});
  REQUIRE(PollUntil(*loop, [&] { return r.totals().failed == 3; }));
  CHECK(r.totals().runs == 3);
}

TEST_CASE("HookRunner: batches within settle_ms make one run", "[hooks]") {
  Setup("warn");
  auto loop = NewLoop();
  Dir d;
  fs::path log = d.path / "log";
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 300;
  HookRunner r(loop->get(), o);
  REQUIRE(r.Configure({Hook("*", "{ echo RUN; cat; } >> log")}).ok());
  r.Applied(1, {"a"});
  // A second session ends soon after the first: still one run.
  auto t = io::Timer::Create(loop->get());
  t->Start(100, [&] { r.Applied(2, {"b"}); });
  CHECK(r.totals().runs == 0);
  REQUIRE(PollUntil(*loop, [&] { return r.totals().succeeded == 1; }));
  CHECK(Read(log) == "RUN\na\nb\n");
}

TEST_CASE("HookRunner: waits while repair is busy but at most max_wait_ms", "[hooks]") {
  Setup("warn");
  auto loop = NewLoop();
  Dir d;
  bool busy = true;
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 0;
  o.max_wait_ms = 300;
  o.repair_busy = [&] { return busy; };
  HookRunner r(loop->get(), o);
  REQUIRE(r.Configure({Hook("a", "true")}).ok());

  // Busy, then quiet: Poke starts it.
  r.Applied(1, {"a"});
  CHECK(r.totals().runs == 0);
  busy = false;
  r.Poke();
  CHECK(r.totals().runs == 1);
  REQUIRE(PollUntil(*loop, [&] { return r.totals().succeeded == 1; }));

  // Busy for good: it runs anyway once max_wait_ms has passed.
  busy = true;
  r.Applied(2, {"a"});
  CHECK(r.totals().runs == 1);
  REQUIRE(PollUntil(*loop, [&] { return r.totals().succeeded == 2; }));
}

TEST_CASE("HookRunner: a bad pattern changes nothing and an unchanged hook keeps its counters",
          "[hooks]") {
  Setup("off");
  auto loop = NewLoop();
  Dir d;
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 0;
  HookRunner r(loop->get(), o);
  REQUIRE(r.Configure({Hook("a", "true")}).ok());
  r.Applied(1, {"a"});
  REQUIRE(PollUntil(*loop, [&] { return r.totals().succeeded == 1; }));
  Status bad = r.Configure({Hook("a", "true"), Hook("[oops", "true")});
  CHECK(bad.code() == Code::kInvalidArgument);
  CHECK(bad.message().find("hook[1].pattern") != std::string::npos);
  CHECK(r.size() == 1);
  REQUIRE(r.Configure({Hook("a", "true"), Hook("b", "true")}).ok());
  CHECK(r.size() == 2);
  CHECK(r.CountersJson()["hooks"][0]["runs"] == 1);
  CHECK(r.CountersJson()["hooks"][1]["runs"] == 0);
}

TEST_CASE("HookRunner: Stop kills a running hook and drops pending paths", "[hooks]") {
  Setup("off");
  auto loop = NewLoop();
  Dir d;
  HookRunner::Options o;
  o.cwd = d.path;
  o.settle_ms = 0;
  HookRunner r(loop->get(), o);
  REQUIRE(r.Configure({Hook("a", "echo $$ > pid; exec sleep 30")}).ok());
  r.Applied(1, {"a"});
  REQUIRE(PollUntil(*loop, [&] { return fs::exists(d.path / "pid"); }));
  r.Applied(2, {"a"});  // queued
  r.Stop();
  CHECK(r.running() == 0);
  r.Applied(3, {"a"});
  CHECK(r.totals().runs == 1);
  loop->Run();  // the killed child is reaped; nothing else is armed
  CHECK(r.totals().runs == 1);
}

}  // namespace
}  // namespace gossync::daemon
