#include "agent/io/process.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/io/signal.h"
#include "tests/unit/io/temp_dir.h"
#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::NewLoop;
using testing::TempDir;

ProcessOptions Quiet(std::string command) {
  ProcessOptions o;
  o.command = std::move(command);
  o.inherit_output = false;
  return o;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True once `pid` no longer exists or is a zombie nobody will signal again.
bool Gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

TEST_CASE("Process: reports exit codes and terminating signals", "[io][process]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  struct Case {
    const char* command;
    int64_t code;
    int signal;
  };
  std::vector<Case> cases = {{"exit 0", 0, 0},
                             {"exit 3", 3, 0},
                             {"true", 0, 0},
                             {"exit 255", 255, 0},
                             {"kill -TERM $$", -1, SIGTERM}};
  std::vector<ProcessExit> results(cases.size());
  std::vector<int> calls(cases.size(), 0);
  std::vector<std::unique_ptr<Process>> procs;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto p = Process::Spawn(loop->get(), Quiet(cases[i].command), [&, i](const ProcessExit& e) {
      ++calls[i];
      results[i] = e;
    });
    REQUIRE(p.ok());
    CHECK((*p)->pid() > 0);
    CHECK((*p)->running());
    procs.push_back(std::move(p).value());
  }
  loop->Run();
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].command);
    CHECK(calls[i] == 1);
    CHECK(results[i].exit_code == cases[i].code);
    CHECK(results[i].term_signal == cases[i].signal);
    CHECK_FALSE(results[i].timed_out);
    CHECK_FALSE(procs[i]->running());
  }
  CHECK(results[0].success());
  CHECK_FALSE(results[1].success());
}

TEST_CASE("Process: stdin bytes reach the child exactly", "[io][process]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  TempDir dir;
  const std::string out = dir / "stdin.out";
  std::string input;
  for (int i = 0; i < 200000; ++i) input += static_cast<char>('a' + i % 26);  // > a pipe buffer
  input += std::string("\0binary\n", 8);
  ProcessOptions o = Quiet("cat > '" + out + "'");
  o.stdin_bytes = input;
  int calls = 0;
  ProcessExit result;
  auto p = Process::Spawn(loop->get(), o, [&](const ProcessExit& e) {
    ++calls;
    result = e;
  });
  REQUIRE(p.ok());
  loop->Run();
  CHECK(calls == 1);
  CHECK(result.success());
  CHECK(ReadFile(out) == input);
}

TEST_CASE("Process: a child that ignores its stdin does not hurt us", "[io][process]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  ProcessOptions o = Quiet("exit 7");
  o.stdin_bytes = std::string(1 << 20, 'x');
  ProcessExit result;
  auto p = Process::Spawn(loop->get(), o, [&](const ProcessExit& e) { result = e; });
  REQUIRE(p.ok());
  loop->Run();
  CHECK(result.exit_code == 7);
}

TEST_CASE("Process: the timeout kills the child and everything it started", "[io][process]") {
  auto loop = NewLoop();
  TempDir dir;
  const std::string pidfile = dir / "grandchild.pid";
  ProcessOptions o = Quiet("sleep 30 & echo $! > '" + pidfile + "'; wait");
  o.timeout_ms = 200;
  int calls = 0;
  ProcessExit result;
  const uint64_t start = loop->now();
  auto p = Process::Spawn(loop->get(), o, [&](const ProcessExit& e) {
    ++calls;
    result = e;
  });
  REQUIRE(p.ok());
  loop->Run();
  const uint64_t elapsed = loop->now() - start;
  CHECK(calls == 1);
  CHECK(result.timed_out);
  CHECK(result.term_signal == SIGKILL);
  CHECK(result.exit_code == -1);
  CHECK(elapsed >= 200);
  CHECK(elapsed < 10000);
  const int grandchild = std::stoi(ReadFile(pidfile));
  REQUIRE(grandchild > 0);
  // The grandchild was in the same group; it dies at once (init reaps it).
  CHECK(testing::PollUntil(*loop, [&] { return Gone(grandchild); }));
}

TEST_CASE("Process: destroying a running process kills and reaps it, without a callback",
          "[io][process][handle]") {
  auto loop = NewLoop();
  int calls = 0;
  int pid = 0;
  {
    auto p =
        Process::Spawn(loop->get(), Quiet("exec sleep 30"), [&](const ProcessExit&) { ++calls; });
    REQUIRE(p.ok());
    pid = (*p)->pid();
    CHECK_FALSE(Gone(pid));
  }
  loop->Run();  // returns once the orphaned handle saw the exit and closed
  CHECK(calls == 0);
  CHECK(Gone(pid));
  // Reaped, not a zombie: the /proc entry is gone entirely.
  CHECK_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)));
}

TEST_CASE("Process: Kill sends a signal to the child", "[io][process]") {
  auto loop = NewLoop();
  ProcessExit result;
  auto p = Process::Spawn(loop->get(), Quiet("exec sleep 30"),
                          [&](const ProcessExit& e) { result = e; });
  REQUIRE(p.ok());
  (*p)->Kill(SIGTERM);
  loop->Run();
  CHECK(result.term_signal == SIGTERM);
  CHECK_FALSE(result.timed_out);
  (*p)->Kill(SIGTERM);  // no-op once exited
}

TEST_CASE("Process: a missing working directory fails at spawn", "[io][process]") {
  auto loop = NewLoop();
  TempDir dir;
  ProcessOptions o = Quiet("true");
  o.cwd = dir / "missing";
  int calls = 0;
  auto p = Process::Spawn(loop->get(), o, [&](const ProcessExit&) { ++calls; });
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == Code::kNotFound);
  CHECK_THAT(p.status().message(), Catch::Contains("true"));
  loop->Run();
  CHECK(calls == 0);
}

}  // namespace
}  // namespace gossync::io
