#include "agent/io/tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "agent/io/signal.h"
#include "agent/io/timer.h"
#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::kDeadlineMs;
using testing::NewLoop;

SocketAddress Loopback(uint16_t port = 0) {
  return SocketAddress::Parse("127.0.0.1:" + std::to_string(port)).value();
}

// Server side of the echo test: echoes everything, pausing reads while more than
// `high_water` bytes wait in its write queue.
struct EchoServer {
  std::unique_ptr<TcpStream> stream;
  size_t high_water = 0;
  size_t max_queue_seen = 0;
  int pauses = 0;
  int eofs = 0;
  int errors = 0;

  void Attach(std::unique_ptr<TcpStream> s) {
    stream = std::move(s);
    TcpStream* st = stream.get();
    stream->Start(Stream::Callbacks{
        .on_data =
            [this, st](std::span<const uint8_t> bytes) {
              REQUIRE(st->Write(bytes).ok());
              max_queue_seen = std::max(max_queue_seen, st->write_queue_bytes());
              if (st->write_queue_bytes() > high_water) {
                st->PauseReading();
                ++pauses;
              }
            },
        .on_eof =
            [this, st] {
              ++eofs;
              REQUIRE(st->Shutdown().ok());
            },
        .on_error = [this](const Status&) { ++errors; },
        .on_drain = [st] { st->ResumeReading(); },
    });
  }
};

TEST_CASE("TcpStream: echoes 10 MiB through a loopback connection with backpressure", "[io][tcp]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  constexpr size_t kTotal = 10 * 1024 * 1024;
  constexpr size_t kChunk = 64 * 1024;
  constexpr size_t kHighWater = 1024 * 1024;
  const uint32_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::vector<uint8_t> payload(kTotal);
  std::mt19937 rng(seed);
  for (auto& b : payload) b = static_cast<uint8_t>(rng());

  EchoServer server;
  server.high_water = kHighWater;
  int accepted = 0;
  auto listener = TcpListener::Listen(loop->get(), Loopback(), [&](std::unique_ptr<TcpStream> s) {
    ++accepted;
    server.Attach(std::move(s));
  });
  REQUIRE(listener.ok());
  const SocketAddress server_address = (*listener)->local_address();
  REQUIRE(server_address.port() != 0);

  std::vector<uint8_t> received;
  received.reserve(kTotal);
  size_t sent = 0;
  int connects = 0, client_eofs = 0, client_errors = 0, shutdowns = 0;
  std::unique_ptr<TcpStream> client;
  std::function<void()> pump = [&] {
    while (sent < kTotal && client->write_queue_bytes() < kHighWater) {
      size_t n = std::min(kChunk, kTotal - sent);
      REQUIRE(client->Write(std::span<const uint8_t>(payload.data() + sent, n)).ok());
      sent += n;
    }
    if (sent == kTotal && shutdowns == 0) {
      ++shutdowns;
      REQUIRE(client->Shutdown([&](const Status& s) { CHECK(s.ok()); }).ok());
    }
  };
  auto c = TcpConnect(loop->get(), server_address, kDeadlineMs, [&](const Status& s) {
    REQUIRE(s.ok());
    ++connects;
    client->Start(Stream::Callbacks{
        .on_data =
            [&](std::span<const uint8_t> b) {
              received.insert(received.end(), b.begin(), b.end());
            },
        .on_eof = [&] { ++client_eofs; },
        .on_error = [&](const Status&) { ++client_errors; },
        .on_drain = [&] { pump(); },
    });
    pump();
  });
  REQUIRE(c.ok());
  client = std::move(c).value();

  REQUIRE(loop->RunUntil([&] { return client_eofs == 1; }, 60000));
  CHECK(accepted == 1);
  CHECK(connects == 1);
  CHECK(server.eofs == 1);
  CHECK(server.errors == 0);
  CHECK(client_errors == 0);
  CHECK(received.size() == kTotal);
  CHECK(received == payload);
  // The server never held much more than its high-water mark plus one read.
  CHECK(server.max_queue_seen <= kHighWater + kChunk);
  CHECK(client->peer_address() == server_address);
  CHECK(client->local_address().port() != 0);
  CHECK(server.stream->peer_address() == client->local_address());
  client.reset();
  server.stream.reset();
  listener->reset();
}

TEST_CASE("TcpStream: the peer closing gives EOF, then writes fail with an error", "[io][tcp]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  auto listener = TcpListener::Listen(loop->get(), Loopback(), [&](std::unique_ptr<TcpStream> s) {
    s.reset();  // the server drops the connection at once
  });
  REQUIRE(listener.ok());
  int eofs = 0, errors = 0;
  Status error;
  std::unique_ptr<TcpStream> client;
  auto c = TcpConnect(loop->get(), (*listener)->local_address(), kDeadlineMs, [&](const Status& s) {
    REQUIRE(s.ok());
    client->Start(Stream::Callbacks{
        .on_data = [](std::span<const uint8_t>) {},
        .on_eof = [&] { ++eofs; },
        .on_error =
            [&](const Status& e) {
              ++errors;
              error = e;
            },
    });
  });
  REQUIRE(c.ok());
  client = std::move(c).value();
  REQUIRE(loop->RunUntil([&] { return eofs == 1; }, kDeadlineMs));
  CHECK(errors == 0);
  CHECK(client->is_open());  // half-closed: writing is still allowed

  // The peer's socket is gone: the first write gets an RST back, a later one fails.
  std::string chunk(4096, 'x');
  bool failed_at_once = false;
  auto writer = Timer::Create(loop->get());
  writer->Start(0, 1, [&] {
    if (!client->Write(chunk).ok()) failed_at_once = true;
    if (failed_at_once || errors > 0) writer->Stop();
  });
  REQUIRE(loop->RunUntil([&] { return errors > 0 || failed_at_once; }, kDeadlineMs));
  CHECK_FALSE(client->is_open());
  CHECK(errors + (failed_at_once ? 1 : 0) == 1);
  CHECK(client->Write(chunk).code() == Code::kAborted);
}

TEST_CASE("TcpConnect: a refused connection reports kUnavailable and closes the stream",
          "[io][tcp]") {
  auto loop = NewLoop();
  uint16_t port = 0;
  {
    auto l = TcpListener::Listen(loop->get(), Loopback(), [](std::unique_ptr<TcpStream>) {});
    REQUIRE(l.ok());
    port = (*l)->local_address().port();
  }
  loop->RunUntil([] { return false; }, 1);  // let the listener's close callback run
  int calls = 0;
  Status result;
  auto c = TcpConnect(loop->get(), Loopback(port), kDeadlineMs, [&](const Status& s) {
    ++calls;
    result = s;
  });
  REQUIRE(c.ok());
  REQUIRE(loop->RunUntil([&] { return calls > 0; }, kDeadlineMs));
  CHECK(calls == 1);
  CHECK(result.code() == Code::kUnavailable);
  CHECK_THAT(result.message(), Catch::Contains("refused"));
  CHECK_THAT(result.message(), Catch::Contains("127.0.0.1:" + std::to_string(port)));
  CHECK((*c)->state() != Handle::State::kOpen);
  loop->Run();
  CHECK((*c)->state() == Handle::State::kClosed);
  CHECK(calls == 1);
}

// A listener whose accept queue is full drops SYNs, so a connect to it hangs.
struct FullListener {
  int listen_fd = -1;
  int filler_fd = -1;
  uint16_t port = 0;
  FullListener() {
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd >= 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listen_fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0);
    REQUIRE(listen(listen_fd, 0) == 0);
    socklen_t len = sizeof(sin);
    REQUIRE(getsockname(listen_fd, reinterpret_cast<sockaddr*>(&sin), &len) == 0);
    port = ntohs(sin.sin_port);
    filler_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(connect(filler_fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0);
  }
  ~FullListener() {
    close(filler_fd);
    close(listen_fd);
  }
};

TEST_CASE("TcpConnect: gives up after the connect timeout", "[io][tcp]") {
  auto loop = NewLoop();
  FullListener full;
  int calls = 0;
  Status result;
  const uint64_t start = loop->now();
  auto c = TcpConnect(loop->get(), Loopback(full.port), 100, [&](const Status& s) {
    ++calls;
    result = s;
  });
  REQUIRE(c.ok());
  loop->Run();  // returns once the timeout closed everything
  CHECK(calls == 1);
  CHECK(result.code() == Code::kUnavailable);
  CHECK_THAT(result.message(), Catch::Contains("timed out after 100 ms"));
  CHECK(loop->now() - start >= 100);
  CHECK((*c)->state() == Handle::State::kClosed);
}

TEST_CASE("TcpConnect: destroying a connecting stream cancels without a callback", "[io][tcp]") {
  auto loop = NewLoop();
  FullListener full;
  int calls = 0;
  {
    auto c = TcpConnect(loop->get(), Loopback(full.port), 1000, [&](const Status&) { ++calls; });
    REQUIRE(c.ok());
  }
  loop->Run();
  CHECK(calls == 0);
}

TEST_CASE("TcpStream: Shutdown flushes queued bytes, then the peer sees EOF", "[io][tcp]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  std::unique_ptr<TcpStream> server;
  std::string server_got;
  int server_eofs = 0;
  auto listener = TcpListener::Listen(loop->get(), Loopback(), [&](std::unique_ptr<TcpStream> s) {
    server = std::move(s);
    server->Start(Stream::Callbacks{
        .on_data = [&](std::span<const uint8_t> b) { server_got.append(b.begin(), b.end()); },
        .on_eof =
            [&] {
              ++server_eofs;
              REQUIRE(server->Write("bye").ok());
              REQUIRE(server->Shutdown([&](const Status&) { server.reset(); }).ok());
            },
    });
  });
  REQUIRE(listener.ok());
  std::string client_got;
  int client_eofs = 0, shutdown_done = 0;
  std::unique_ptr<TcpStream> client;
  const std::string chunk(1024 * 1024, 'q');
  std::string sent;
  auto c = TcpConnect(loop->get(), (*listener)->local_address(), kDeadlineMs, [&](const Status& s) {
    REQUIRE(s.ok());
    client->Start(Stream::Callbacks{
        .on_data = [&](std::span<const uint8_t> b) { client_got.append(b.begin(), b.end()); },
        .on_eof = [&] { ++client_eofs; },
    });
    // Write until the socket buffers are full and libuv queues the rest.
    while (client->write_queue_bytes() == 0) {
      REQUIRE(client->Write(chunk).ok());
      sent += chunk;
    }
    REQUIRE(client
                ->Shutdown([&](const Status& st) {
                  CHECK(st.ok());
                  ++shutdown_done;
                })
                .ok());
    CHECK(client->Write("late").code() == Code::kAborted);
    CHECK(client->Shutdown().code() == Code::kAborted);
  });
  REQUIRE(c.ok());
  client = std::move(c).value();
  REQUIRE(loop->RunUntil([&] { return client_eofs == 1; }, kDeadlineMs));
  CHECK(shutdown_done == 1);
  CHECK(server_eofs == 1);
  CHECK(server_got.size() == sent.size());
  CHECK(server_got == sent);
  CHECK(client_got == "bye");
  CHECK(server == nullptr);
}

TEST_CASE("TcpStream: closing with queued writes drops them without callbacks", "[io][tcp]") {
  IgnoreSigpipe();
  auto loop = NewLoop();
  std::vector<std::unique_ptr<TcpStream>> accepted;
  auto listener = TcpListener::Listen(loop->get(), Loopback(), [&](std::unique_ptr<TcpStream> s) {
    accepted.push_back(std::move(s));  // never reads
  });
  REQUIRE(listener.ok());
  int callbacks = 0;
  std::unique_ptr<TcpStream> client;
  bool connected = false;
  auto c = TcpConnect(loop->get(), (*listener)->local_address(), kDeadlineMs, [&](const Status& s) {
    REQUIRE(s.ok());
    connected = true;
    client->Start(Stream::Callbacks{
        .on_data = [&](std::span<const uint8_t>) { ++callbacks; },
        .on_eof = [&] { ++callbacks; },
        .on_error = [&](const Status&) { ++callbacks; },
        .on_drain = [&] { ++callbacks; },
    });
  });
  REQUIRE(c.ok());
  client = std::move(c).value();
  REQUIRE(loop->RunUntil([&] { return connected && accepted.size() == 1; }, kDeadlineMs));
  const std::string chunk(1024 * 1024, 'z');
  while (client->write_queue_bytes() == 0) REQUIRE(client->Write(chunk).ok());
  client->Close();
  client->Close();
  loop->RunUntil([] { return false; }, 20);
  CHECK(client->state() == Handle::State::kClosed);
  CHECK(callbacks == 0);
  accepted.clear();
}

TEST_CASE("TcpListener: a port in use is kAlreadyExists", "[io][tcp]") {
  auto loop = NewLoop();
  auto first = TcpListener::Listen(loop->get(), Loopback(), [](std::unique_ptr<TcpStream>) {});
  REQUIRE(first.ok());
  auto second = TcpListener::Listen(loop->get(), (*first)->local_address(),
                                    [](std::unique_ptr<TcpStream>) {});
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kAlreadyExists);
  CHECK_THAT(second.status().message(), Catch::Contains((*first)->local_address().ToString()));
}

}  // namespace
}  // namespace gossync::io
