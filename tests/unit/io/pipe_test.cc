#include "agent/io/pipe.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "agent/io/signal.h"
#include "tests/unit/io/temp_dir.h"
#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::kDeadlineMs;
using testing::NewLoop;
using testing::TempDir;

// A request/response round trip over the admin socket, the way the CLI uses it.
TEST_CASE("PipeListener: serves requests on a 0660 socket and the client reads replies",
          "[io][pipe]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  TempDir dir;
  const std::string path = dir / "admin.sock";
  std::vector<std::unique_ptr<PipeStream>> sessions;
  Result<PeerCredentials> creds = Status::Internal("unset");
  auto listener = PipeListener::Listen(loop->get(), path, [&](std::unique_ptr<PipeStream> s) {
    PipeStream* st = s.get();
    creds = st->peer_credentials();
    st->Start(Stream::Callbacks{
        .on_data =
            [st](std::span<const uint8_t> b) {
              std::string reply = "echo:" + std::string(b.begin(), b.end());
              REQUIRE(st->Write(reply).ok());
            },
        .on_eof = [st] { REQUIRE(st->Shutdown().ok()); },
    });
    sessions.push_back(std::move(s));
  });
  REQUIRE(listener.ok());
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0660);

  std::string reply;
  int eofs = 0, connects = 0;
  std::unique_ptr<PipeStream> client;
  auto c = PipeConnect(loop->get(), path, [&](const Status& s) {
    REQUIRE(s.ok());
    ++connects;
    client->Start(Stream::Callbacks{
        .on_data = [&](std::span<const uint8_t> b) { reply.append(b.begin(), b.end()); },
        .on_eof = [&] { ++eofs; },
    });
    REQUIRE(client->Write("status").ok());
    REQUIRE(client->Shutdown().ok());
  });
  REQUIRE(c.ok());
  client = std::move(c).value();
  REQUIRE(loop->RunUntil([&] { return eofs == 1; }, kDeadlineMs));
  CHECK(connects == 1);
  CHECK(reply == "echo:status");
  REQUIRE(creds.ok());
  CHECK(creds->pid == getpid());
  CHECK(creds->uid == getuid());
  CHECK(client->description() == "unix " + path);

  client.reset();
  sessions.clear();
  listener->reset();
  loop->RunUntil([] { return false; }, 5);
  CHECK_FALSE(std::filesystem::exists(path));  // removed on close
}

TEST_CASE("PipeListener: replaces a stale socket file nobody serves", "[io][pipe]") {
  auto loop = NewLoop();
  TempDir dir;
  const std::string path = dir / "admin.sock";
  {
    // What a crashed daemon leaves behind: a bound socket file, no process behind it.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    path.copy(sun.sun_path, path.size());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0);
    close(fd);
  }
  REQUIRE(std::filesystem::exists(path));
  int accepted = 0;
  auto listener =
      PipeListener::Listen(loop->get(), path, [&](std::unique_ptr<PipeStream>) { ++accepted; });
  REQUIRE(listener.ok());
  bool connected = false;
  auto c = PipeConnect(loop->get(), path, [&](const Status& s) { connected = s.ok(); });
  REQUIRE(c.ok());
  REQUIRE(loop->RunUntil([&] { return connected && accepted == 1; }, kDeadlineMs));
}

TEST_CASE("PipeListener: refuses a socket another live server is serving", "[io][pipe]") {
  auto loop = NewLoop();
  TempDir dir;
  const std::string path = dir / "admin.sock";
  auto first = PipeListener::Listen(loop->get(), path, [](std::unique_ptr<PipeStream>) {});
  REQUIRE(first.ok());
  auto second = PipeListener::Listen(loop->get(), path, [](std::unique_ptr<PipeStream>) {});
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kAlreadyExists);
  CHECK_THAT(second.status().message(), Catch::Contains("another process is serving"));
  // The first server is untouched.
  bool connected = false;
  auto c = PipeConnect(loop->get(), path, [&](const Status& s) { connected = s.ok(); });
  REQUIRE(c.ok());
  REQUIRE(loop->RunUntil([&] { return connected; }, kDeadlineMs));
}

TEST_CASE("PipeListener: never deletes a file that is not a socket", "[io][pipe]") {
  auto loop = NewLoop();
  TempDir dir;
  const std::string path = dir / "admin.sock";
  std::ofstream(path) << "precious";
  auto l = PipeListener::Listen(loop->get(), path, [](std::unique_ptr<PipeStream>) {});
  REQUIRE_FALSE(l.ok());
  CHECK(l.status().code() == Code::kAlreadyExists);
  CHECK_THAT(l.status().message(), Catch::Contains("not a socket"));
  std::ifstream in(path);
  std::string content;
  in >> content;
  CHECK(content == "precious");
}

TEST_CASE("PipeListener: a path longer than sun_path is refused, not truncated", "[io][pipe]") {
  auto loop = NewLoop();
  TempDir dir;
  const std::string path = dir / std::string(120, 'p');
  auto l = PipeListener::Listen(loop->get(), path, [](std::unique_ptr<PipeStream>) {});
  REQUIRE_FALSE(l.ok());
  CHECK(l.status().code() == Code::kInvalidArgument);
  auto c = PipeConnect(loop->get(), path, [](const Status&) {});
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == Code::kInvalidArgument);
}

TEST_CASE("PipeConnect: a missing socket is kNotFound, a dead one kUnavailable", "[io][pipe]") {
  auto loop = NewLoop();
  TempDir dir;
  int calls = 0;
  Status missing, dead;
  auto c1 = PipeConnect(loop->get(), dir / "none.sock", [&](const Status& s) {
    ++calls;
    missing = s;
  });
  REQUIRE(c1.ok());
  const std::string stale = dir / "stale.sock";
  {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    stale.copy(sun.sun_path, stale.size());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0);
    close(fd);
  }
  auto c2 = PipeConnect(loop->get(), stale, [&](const Status& s) {
    ++calls;
    dead = s;
  });
  REQUIRE(c2.ok());
  loop->Run();
  CHECK(calls == 2);
  CHECK(missing.code() == Code::kNotFound);
  CHECK(dead.code() == Code::kUnavailable);
  CHECK_THAT(dead.message(), Catch::Contains(stale));
  CHECK((*c1)->state() == Handle::State::kClosed);
}

}  // namespace
}  // namespace gossync::io
