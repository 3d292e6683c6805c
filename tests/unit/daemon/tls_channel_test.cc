#include "agent/daemon/tls_channel.h"

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "agent/io/tcp.h"
#include "tests/unit/io/test_loop.h"
#include "tests/unit/tls/tls_test_util.h"

namespace gossync::daemon {
namespace {

using io::testing::NewLoop;
using io::testing::PollUntil;
using tls::Role;
using tls::testing::TestCa;

TEST_CASE("TlsChannel: a channel ended while connecting hangs up instead of starting TLS",
          "[tls_channel]") {
  // A session that gives way while its dial is still connecting (both peers
  // dialed at once) must not leave the peer holding a half-open connection
  // in its TLS handshake until the idle timeout.
  auto loop = NewLoop();
  TestCa ca;
  tls::SslCtxPtr client_ctx = ca.Context("alpha", Role::kClient);
  std::vector<std::unique_ptr<io::TcpStream>> accepted;
  size_t bytes = 0;
  bool eof = false;
  auto addr = io::SocketAddress::Parse("127.0.0.1:0");
  REQUIRE(addr.ok());
  auto listener = io::TcpListener::Listen(loop->get(), *addr, [&](auto stream) {
    io::Stream::Callbacks cbs;
    cbs.on_data = [&](std::span<const uint8_t> b) { bytes += b.size(); };
    cbs.on_eof = [&] { eof = true; };
    cbs.on_error = [&](const Status&) { eof = true; };
    stream->Start(std::move(cbs));
    accepted.push_back(std::move(stream));
  });
  REQUIRE(listener.ok());

  bool closed = false;
  TlsChannel::Callbacks cbs;
  cbs.on_ready = [](const std::string&) { FAIL("no handshake expected"); };
  cbs.on_frame = [](std::vector<uint8_t>) {};
  cbs.on_closed = [&](const Status&) { closed = true; };
  std::unique_ptr<TlsChannel> ch =
      TlsChannel::Connect(loop->get(), (*listener)->local_address(), client_ctx.get(), "beta",
                          5'000, 1 << 20, std::move(cbs));
  ch->Finish();  // at once: the TCP connect is still in flight
  CHECK(closed);
  // The channel object lives on (its owner keeps it a while); the server
  // still sees the connection, and then its end, without a ClientHello.
  REQUIRE(PollUntil(*loop, [&] { return eof; }));
  CHECK(accepted.size() == 1);
  CHECK(bytes == 0);
}

}  // namespace
}  // namespace gossync::daemon
