#include "agent/io/udp.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/unit/io/test_loop.h"

namespace gossync::io {
namespace {

using testing::kDeadlineMs;
using testing::NewLoop;

SocketAddress Loopback() { return SocketAddress::Parse("127.0.0.1:0").value(); }

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct Received {
  std::vector<std::string> datagrams;
  std::vector<SocketAddress> senders;
  UdpSocket::ReceiveCallback Callback() {
    return [this](std::span<const uint8_t> d, const SocketAddress& from) {
      datagrams.emplace_back(d.begin(), d.end());
      senders.push_back(from);
    };
  }
};

TEST_CASE("UdpSocket: binds port 0 and exchanges datagrams with their senders", "[io][udp]") {
  auto loop = NewLoop();
  Received at_a, at_b;
  auto a = UdpSocket::Bind(loop->get(), Loopback(), {}, at_a.Callback());
  auto b = UdpSocket::Bind(loop->get(), Loopback(), {}, at_b.Callback());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  UdpSocket& sa = **a;
  UdpSocket& sb = **b;
  CHECK(sa.local_address().port() != 0);
  CHECK(sa.local_address().host() == "127.0.0.1");
  CHECK(sa.local_address() != sb.local_address());

  REQUIRE(sa.Send(sb.local_address(), Bytes("ping")).ok());
  REQUIRE(sb.Send(sa.local_address(), Bytes("pong")).ok());
  REQUIRE(sa.Send(sb.local_address(), Bytes("")).ok());  // empty datagrams are datagrams
  REQUIRE(loop->RunUntil([&] { return at_b.datagrams.size() == 2 && at_a.datagrams.size() == 1; },
                         kDeadlineMs));
  CHECK(at_b.datagrams == std::vector<std::string>{"ping", ""});
  CHECK(at_a.datagrams == std::vector<std::string>{"pong"});
  CHECK(at_b.senders[0] == sa.local_address());
  CHECK(at_a.senders[0] == sb.local_address());
  CHECK(sa.counters().sent == 2);
  CHECK(sb.counters().sent == 1);
  CHECK(sb.counters().received == 2);
  CHECK(sa.counters().send_errors == 0);
}

TEST_CASE("UdpSocket: datagrams larger than max_datagram are dropped and counted", "[io][udp]") {
  auto loop = NewLoop();
  Received got;
  UdpOptions small;
  small.max_datagram = 100;
  auto rx = UdpSocket::Bind(loop->get(), Loopback(), small, got.Callback());
  auto tx = UdpSocket::Bind(loop->get(), Loopback(), {}, [](auto, auto&) {});
  REQUIRE(rx.ok());
  REQUIRE(tx.ok());
  const SocketAddress to = (*rx)->local_address();
  REQUIRE((*tx)->Send(to, Bytes(std::string(100, 'a'))).ok());
  REQUIRE((*tx)->Send(to, Bytes(std::string(101, 'b'))).ok());
  REQUIRE((*tx)->Send(to, Bytes(std::string(1400, 'c'))).ok());
  REQUIRE((*tx)->Send(to, Bytes("tail")).ok());
  REQUIRE(loop->RunUntil([&] { return got.datagrams.size() == 2; }, kDeadlineMs));
  CHECK(got.datagrams[0] == std::string(100, 'a'));
  CHECK(got.datagrams[1] == "tail");
  CHECK((*rx)->counters().received == 2);
  CHECK((*rx)->counters().dropped_oversize == 2);
}

TEST_CASE("UdpSocket: a burst past max_send_queue is dropped and counted", "[io][udp]") {
  auto loop = NewLoop();
  Received got;
  auto rx = UdpSocket::Bind(loop->get(), Loopback(), {}, got.Callback());
  UdpOptions bounded;
  bounded.max_send_queue = 8;
  auto tx = UdpSocket::Bind(loop->get(), Loopback(), bounded, [](auto, auto&) {});
  REQUIRE(rx.ok());
  REQUIRE(tx.ok());
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20; ++i) {
    Status s = (*tx)->Send((*rx)->local_address(), Bytes("datagram " + std::to_string(i)));
    if (s.ok()) {
      ++accepted;
    } else {
      CHECK(s.code() == Code::kLimitExceeded);
      ++refused;
    }
  }
  CHECK(accepted == 8);
  CHECK(refused == 12);
  CHECK((*tx)->counters().dropped_queue_full == 12);
  CHECK((*tx)->send_queue_count() == 8);
  REQUIRE(loop->RunUntil([&] { return got.datagrams.size() == 8; }, kDeadlineMs));
  CHECK(got.datagrams.front() == "datagram 0");
  CHECK(got.datagrams.back() == "datagram 7");
  CHECK((*tx)->counters().sent == 8);
  CHECK((*tx)->send_queue_count() == 0);
  // The queue drained, so sending works again.
  CHECK((*tx)->Send((*rx)->local_address(), Bytes("again")).ok());
}

TEST_CASE("UdpSocket: sending to the other address family is refused", "[io][udp]") {
  auto loop = NewLoop();
  auto s = UdpSocket::Bind(loop->get(), Loopback(), {}, [](auto, auto&) {});
  REQUIRE(s.ok());
  Status st = (*s)->Send(SocketAddress::Parse("[::1]:9").value(), Bytes("x"));
  CHECK(st.code() == Code::kInvalidArgument);
}

TEST_CASE("UdpSocket: binding a port in use is kAlreadyExists", "[io][udp]") {
  auto loop = NewLoop();
  auto first = UdpSocket::Bind(loop->get(), Loopback(), {}, [](auto, auto&) {});
  REQUIRE(first.ok());
  auto second = UdpSocket::Bind(loop->get(), (*first)->local_address(), {}, [](auto, auto&) {});
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kAlreadyExists);
  CHECK_THAT(second.status().message(), Catch::Contains((*first)->local_address().ToString()));
}

TEST_CASE("UdpSocket: destroying a socket with queued sends frees them silently",
          "[io][udp][handle]") {
  auto loop = NewLoop();
  int received = 0;
  auto rx = UdpSocket::Bind(loop->get(), Loopback(), {}, [&](auto, auto&) { ++received; });
  REQUIRE(rx.ok());
  {
    auto tx = UdpSocket::Bind(loop->get(), Loopback(), {}, [](auto, auto&) {});
    REQUIRE(tx.ok());
    for (int i = 0; i < 5; ++i) REQUIRE((*tx)->Send((*rx)->local_address(), Bytes("x")).ok());
    CHECK((*tx)->send_queue_count() == 5);
  }
  // The first datagram left synchronously; the others were cancelled with the socket.
  REQUIRE(loop->RunUntil([&] { return received >= 1; }, kDeadlineMs));
  loop->RunUntil([] { return false; }, 10);
  CHECK(received <= 5);
}

TEST_CASE("UdpSocket: the receive callback may destroy the socket", "[io][udp][handle]") {
  auto loop = NewLoop();
  std::unique_ptr<UdpSocket> rx;
  int received = 0;
  auto r = UdpSocket::Bind(loop->get(), Loopback(), {}, [&](auto, auto&) {
    ++received;
    rx.reset();
  });
  REQUIRE(r.ok());
  rx = std::move(r).value();
  auto tx = UdpSocket::Bind(loop->get(), Loopback(), {}, [](auto, auto&) {});
  REQUIRE(tx.ok());
  for (int i = 0; i < 3; ++i) REQUIRE((*tx)->Send(rx->local_address(), Bytes("x")).ok());
  REQUIRE(loop->RunUntil([&] { return rx == nullptr; }, kDeadlineMs));
  loop->RunUntil([] { return false; }, 10);
  CHECK(received == 1);
}

}  // namespace
}  // namespace gossync::io
