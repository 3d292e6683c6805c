#include "agent/io/address.h"

#include <catch2/catch.hpp>

namespace gossync::io {
namespace {

TEST_CASE("SocketAddress: parses IPv4 host:port", "[io][address]") {
  auto a = SocketAddress::Parse("10.0.0.1:7946");
  REQUIRE(a.ok());
  CHECK(a->family() == AF_INET);
  CHECK(a->port() == 7946);
  CHECK(a->host() == "10.0.0.1");
  CHECK(a->ToString() == "10.0.0.1:7946");
}

TEST_CASE("SocketAddress: parses the any address and port 0", "[io][address]") {
  auto a = SocketAddress::Parse("0.0.0.0:0");
  REQUIRE(a.ok());
  CHECK(a->port() == 0);
  CHECK(a->ToString() == "0.0.0.0:0");
  auto b = SocketAddress::Parse("0.0.0.0:65535");
  REQUIRE(b.ok());
  CHECK(b->port() == 65535);
}

TEST_CASE("SocketAddress: parses bracketed IPv6", "[io][address]") {
  auto a = SocketAddress::Parse("[::1]:7946");
  REQUIRE(a.ok());
  CHECK(a->family() == AF_INET6);
  CHECK(a->host() == "::1");
  CHECK(a->ToString() == "[::1]:7946");
  auto b = SocketAddress::Parse("[2001:db8::10]:1");
  REQUIRE(b.ok());
  CHECK(b->ToString() == "[2001:db8::10]:1");
  auto c = SocketAddress::Parse("[fe80::1%1]:7946");
  REQUIRE(c.ok());
  CHECK(c->host().rfind("fe80::1%", 0) == 0);
}

TEST_CASE("SocketAddress: ToString round-trips through Parse", "[io][address]") {
  for (const char* text :
       {"127.0.0.1:1", "255.255.255.255:65535", "[::]:0", "[::ffff:1.2.3.4]:80"}) {
    auto a = SocketAddress::Parse(text);
    REQUIRE(a.ok());
    auto b = SocketAddress::Parse(a->ToString());
    REQUIRE(b.ok());
    CHECK(*a == *b);
  }
}

TEST_CASE("SocketAddress: rejects malformed input with a clear message", "[io][address]") {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"10.0.0.1", "missing port"},
           {"10.0.0.1:", "missing port"},
           {":7946", "missing host"},
           {"10.0.0.1:65536", "0 to 65535"},
           {"10.0.0.1:99999999", "0 to 65535"},
           {"10.0.0.1:-1", "0 to 65535"},
           {"10.0.0.1:7x", "0 to 65535"},
           {"10.0.0.256:1", "not a numeric IPv4"},
           {"1.2.3:1", "not a numeric IPv4"},
           {"example.com:7946", "use Resolve"},
           {"::1:7946", "in brackets"},
           {"[::1]", "expected ':port'"},
           {"[::1:7946", "missing ']'"},
           {"[1.2.3.4]:1", "IPv6"},
           {"[fe80::1%no-such-if0]:1", "unknown network interface"},
       }) {
    auto a = SocketAddress::Parse(c.text);
    INFO(c.text);
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == Code::kInvalidArgument);
    CHECK_THAT(a.status().message(), Catch::Contains(c.says));
    CHECK_THAT(a.status().message(), Catch::Contains(c.text));
  }
}

TEST_CASE("SocketAddress: equality compares family, address and port", "[io][address]") {
  auto a = SocketAddress::Parse("127.0.0.1:5");
  auto b = SocketAddress::Parse("127.0.0.1:6");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  CHECK(a->WithPort(6) == *b);
  CHECK(SocketAddress() == SocketAddress());
  CHECK_FALSE(SocketAddress().is_valid());
}

TEST_CASE("Resolve: numeric addresses come back unchanged", "[io][address]") {
  auto r = Resolve("127.0.0.1:7946");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].ToString() == "127.0.0.1:7946");
}

TEST_CASE("Resolve: localhost resolves to a loopback address", "[io][address]") {
  auto r = Resolve("localhost:7946");
  REQUIRE(r.ok());
  REQUIRE_FALSE(r->empty());
  for (const SocketAddress& a : *r) {
    CHECK(a.port() == 7946);
    CHECK((a.host() == "127.0.0.1" || a.host() == "::1"));
  }
}

TEST_CASE("Resolve: an unknown name is NotFound and a bad port InvalidArgument", "[io][address]") {
  auto r = Resolve("no-such-host.invalid:7946");
  REQUIRE_FALSE(r.ok());
  CHECK((r.status().code() == Code::kNotFound || r.status().code() == Code::kUnavailable));
  CHECK_THAT(r.status().message(), Catch::Contains("no-such-host.invalid"));
  auto p = Resolve("localhost:70000");
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace gossync::io
