#include "agent/tls/session.h"

#include <catch2/catch.hpp>
#include <optional>
#include <random>

#include "agent/tls/context.h"
#include "tests/unit/tls/tls_test_util.h"

namespace gossync::tls {
namespace {

using testing::Pump;
using testing::PumpResult;
using testing::RawContext;
using testing::TempDir;
using testing::TestCa;
using testing::WriteSelfSigned;

TlsSession MustClient(SSL_CTX* ctx, std::string_view expected) {
  auto s = TlsSession::Client(ctx, expected);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(*s);
}

TlsSession MustServer(SSL_CTX* ctx) {
  auto s = TlsSession::Server(ctx);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(*s);
}

uint64_t Seed() {
  uint64_t seed = std::random_device{}();
  seed = (seed << 32) ^ std::random_device{}();
  return seed;
}

// Sends `data` from one session to the other through both TLS layers, in
// odd-sized writes, taking and feeding ciphertext as a transport would, and
// returns what the receiver read.
std::string Transfer(TlsSession& from, TlsSession& to, const std::string& data) {
  std::string received;
  std::vector<uint8_t> buf(48 * 1024);
  auto deliver = [&] {
    std::string ct = from.TakeCiphertext();
    std::string_view rest(ct);
    while (!rest.empty()) {
      size_t n = std::min<size_t>(rest.size(), 70001);
      Status s = to.FeedCiphertext(rest.substr(0, n));
      INFO(s.ToString());
      REQUIRE(s.ok());
      rest.remove_prefix(n);
      while (true) {
        auto r = to.ReadPlaintext(buf);
        INFO(r.status().ToString());
        REQUIRE(r.ok());
        if (*r == 0) break;
        received.append(reinterpret_cast<const char*>(buf.data()), *r);
      }
    }
    std::string back = to.TakeCiphertext();
    if (!back.empty()) REQUIRE(from.FeedCiphertext(back).ok());
  };
  size_t off = 0;
  while (off < data.size()) {
    size_t n = std::min<size_t>(data.size() - off, 100003);
    Status s = from.WritePlaintext(std::string_view(data).substr(off, n));
    if (s.code() == Code::kUnavailable) {
      deliver();
      continue;
    }
    INFO(s.ToString());
    REQUIRE(s.ok());
    off += n;
    if (from.pending_ciphertext() > 300000) deliver();
  }
  deliver();
  return received;
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_CASE("Session: mutual handshake succeeds and data flows both ways", "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  CHECK(client.pending_ciphertext() > 0);  // the ClientHello is ready at once
  PumpResult r = Pump(client, server);
  INFO(r.a.ToString() << " / " << r.b.ToString());
  REQUIRE(r.a.ok());
  REQUIRE(r.b.ok());
  REQUIRE(client.handshake_done());
  REQUIRE(server.handshake_done());
  CHECK(client.peer_name() == "beta");
  CHECK(server.peer_name() == "alpha");
  CHECK(SSL_version(client.ssl()) == TLS1_3_VERSION);

  CHECK(Transfer(client, server, "hello from alpha") == "hello from alpha");
  CHECK(Transfer(server, client, "hello from beta") == "hello from beta");

  // The name each side claims in its hello is checked against its certificate.
  CHECK(server.CheckClaimedName("alpha").ok());
  Status lie = server.CheckClaimedName("gamma");
  CHECK(lie.code() == Code::kPermissionDenied);
  CHECK_THAT(lie.message(), Catch::Contains("claims to be 'gamma'"));
  CHECK_THAT(lie.message(), Catch::Contains("is for 'alpha'"));
  CHECK(client.CheckClaimedName("beta").ok());
}

TEST_CASE("Session: 10 MiB cross intact in each direction", "[tls][session]") {
  uint64_t seed = Seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  REQUIRE((r.a.ok() && r.b.ok()));

  const std::string up = RandomBytes(rng, 10 << 20);
  const std::string down = RandomBytes(rng, (10 << 20) + 17);
  std::string got_up = Transfer(client, server, up);
  CHECK(got_up.size() == up.size());
  CHECK(got_up == up);
  std::string got_down = Transfer(server, client, down);
  CHECK(got_down.size() == down.size());
  CHECK(got_down == down);
}

TEST_CASE("Session: the server refuses a client certificate from another CA", "[tls][session]") {
  TestCa ours, theirs;
  auto server_ctx = ours.Context("beta", Role::kServer);
  // The intruder trusts our CA, so it would accept our server; it has only
  // a certificate from its own CA.
  theirs.Issue("alpha");
  auto client_ctx = RawContext(theirs.cert("alpha"), theirs.key("alpha"), ours.ca(), false);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  INFO(r.b.ToString());
  REQUIRE_FALSE(r.b.ok());
  CHECK(r.b.code() == Code::kPermissionDenied);
  CHECK_THAT(r.b.message(),
             Catch::Contains("certificate verify failed: unable to get local issuer certificate"));
  CHECK_FALSE(server.handshake_done());
  CHECK(server.peer_name().empty());
  // The TLS 1.3 client finished its side; the server's alert ends it.
  INFO(r.a.ToString());
  CHECK_FALSE(r.a.ok());
  CHECK_THAT(r.a.message(), Catch::Contains("alert unknown ca"));
  CHECK(r.a.code() == Code::kPermissionDenied);
  // A dead session stays dead.
  CHECK(server.WritePlaintext(std::string_view("x")).code() == r.b.code());
  CHECK(server.FeedCiphertext(std::string_view("x")).code() == r.b.code());
}

TEST_CASE("Session: the client refuses a server certificate from another CA", "[tls][session]") {
  TestCa ours, theirs;
  auto client_ctx = ours.Context("alpha", Role::kClient);
  theirs.Issue("beta");
  auto server_ctx = RawContext(theirs.cert("beta"), theirs.key("beta"), ours.ca(), true);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  INFO(r.a.ToString());
  REQUIRE_FALSE(r.a.ok());
  CHECK(r.a.code() == Code::kPermissionDenied);
  CHECK_THAT(r.a.message(),
             Catch::Contains("certificate verify failed: unable to get local issuer certificate"));
  CHECK_FALSE(client.handshake_done());
  CHECK_FALSE(r.b.ok());  // the server got the client's alert
  CHECK_FALSE(server.handshake_done());
}

TEST_CASE("Session: a self-signed certificate with a member's name is refused", "[tls][session]") {
  TestCa ca;
  TempDir dir;
  SECTION("as a client") {
    auto [cert, key] = WriteSelfSigned(dir, "alpha");
    auto client_ctx = RawContext(cert, key, ca.ca(), false);
    auto server_ctx = ca.Context("beta", Role::kServer);
    TlsSession client = MustClient(client_ctx.get(), "beta");
    TlsSession server = MustServer(server_ctx.get());
    PumpResult r = Pump(client, server);
    INFO(r.b.ToString());
    REQUIRE_FALSE(r.b.ok());
    CHECK_THAT(r.b.message(), Catch::Contains("certificate verify failed"));
    CHECK_THAT(r.b.message(), Catch::Contains("self-signed"));
    CHECK_FALSE(server.handshake_done());
  }
  SECTION("as a server") {
    auto [cert, key] = WriteSelfSigned(dir, "beta");
    auto server_ctx = RawContext(cert, key, ca.ca(), true);
    auto client_ctx = ca.Context("alpha", Role::kClient);
    TlsSession client = MustClient(client_ctx.get(), "beta");
    TlsSession server = MustServer(server_ctx.get());
    PumpResult r = Pump(client, server);
    INFO(r.a.ToString());
    REQUIRE_FALSE(r.a.ok());
    CHECK_THAT(r.a.message(), Catch::Contains("certificate verify failed"));
    CHECK_FALSE(client.handshake_done());
  }
}

TEST_CASE("Session: a client without a certificate is refused", "[tls][session]") {
  TestCa ca;
  auto server_ctx = ca.Context("beta", Role::kServer);
  auto client_ctx = RawContext("", "", ca.ca(), false);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  INFO(r.b.ToString());
  REQUIRE_FALSE(r.b.ok());
  CHECK_THAT(r.b.message(), Catch::Contains("did not return a certificate"));
  CHECK(r.b.code() == Code::kPermissionDenied);
  CHECK_FALSE(server.handshake_done());
  CHECK_FALSE(r.a.ok());
}

TEST_CASE("Session: a peer limited to TLS 1.2 is refused", "[tls][session]") {
  TestCa ca;
  SECTION("client") {
    auto client_ctx = ca.Context("alpha", Role::kClient);
    REQUIRE(SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_2_VERSION) == 1);
    REQUIRE(SSL_CTX_set_max_proto_version(client_ctx.get(), TLS1_2_VERSION) == 1);
    auto server_ctx = ca.Context("beta", Role::kServer);
    TlsSession client = MustClient(client_ctx.get(), "beta");
    TlsSession server = MustServer(server_ctx.get());
    PumpResult r = Pump(client, server);
    INFO(r.b.ToString());
    REQUIRE_FALSE(r.b.ok());
    CHECK_THAT(r.b.message(), Catch::Contains("unsupported protocol"));
    CHECK(r.b.code() == Code::kCorruption);
    CHECK_FALSE(r.a.ok());
    CHECK_THAT(r.a.message(), Catch::Contains("protocol version"));
  }
  SECTION("server") {
    auto client_ctx = ca.Context("alpha", Role::kClient);
    auto server_ctx = ca.Context("beta", Role::kServer);
    REQUIRE(SSL_CTX_set_min_proto_version(server_ctx.get(), TLS1_2_VERSION) == 1);
    REQUIRE(SSL_CTX_set_max_proto_version(server_ctx.get(), TLS1_2_VERSION) == 1);
    TlsSession client = MustClient(client_ctx.get(), "beta");
    TlsSession server = MustServer(server_ctx.get());
    PumpResult r = Pump(client, server);
    CHECK_FALSE(r.a.ok());
    CHECK_FALSE(r.b.ok());
    CHECK_FALSE(client.handshake_done());
  }
}

TEST_CASE("Session: the client refuses a server whose certificate names another node",
          "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("gamma", Role::kServer);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  INFO(r.a.ToString());
  REQUIRE_FALSE(r.a.ok());
  CHECK(r.a.code() == Code::kPermissionDenied);
  CHECK_THAT(r.a.message(), Catch::Contains("peer certificate is for 'gamma', expected 'beta'"));
  CHECK_FALSE(client.handshake_done());
  CHECK_FALSE(r.b.ok());
  CHECK_FALSE(server.handshake_done());
}

TEST_CASE("Session: a pinned fingerprint must match on either side", "[tls][session]") {
  TestCa ca;
  ca.Issue("alpha");
  ca.Issue("beta");
  const std::string alpha_fp = CertFingerprint(ReadCertFile(ca.cert("alpha"))->get());
  const std::string beta_fp = CertFingerprint(ReadCertFile(ca.cert("beta"))->get());
  const std::string wrong(64, 'a');

  auto handshake = [&](std::map<std::string, std::string> client_pins,
                       std::map<std::string, std::string> server_pins) {
    auto client_ctx = ca.Context("alpha", Role::kClient, std::move(client_pins));
    auto server_ctx = ca.Context("beta", Role::kServer, std::move(server_pins));
    TlsSession client = MustClient(client_ctx.get(), "beta");
    TlsSession server = MustServer(server_ctx.get());
    PumpResult r = Pump(client, server);
    if (r.a.ok() && r.b.ok()) {
      CHECK(client.handshake_done());
      CHECK(server.handshake_done());
    }
    return r;
  };

  SECTION("matching pins on both sides pass") {
    PumpResult r = handshake({{"beta", beta_fp}}, {{"alpha", alpha_fp}});
    CHECK(r.a.ok());
    CHECK(r.b.ok());
  }
  SECTION("a pin for another node does not matter") {
    PumpResult r = handshake({{"gamma", wrong}}, {{"gamma", wrong}});
    CHECK(r.a.ok());
    CHECK(r.b.ok());
  }
  SECTION("the server refuses a client whose pin does not match") {
    PumpResult r = handshake({}, {{"alpha", wrong}});
    INFO(r.b.ToString());
    REQUIRE_FALSE(r.b.ok());
    CHECK(r.b.code() == Code::kPermissionDenied);
    CHECK_THAT(r.b.message(), Catch::Contains("the pin for 'alpha' is " + wrong));
    CHECK_THAT(r.b.message(), Catch::Contains(alpha_fp));
    CHECK_FALSE(r.a.ok());
  }
  SECTION("the client refuses a server whose pin does not match") {
    PumpResult r = handshake({{"beta", wrong}}, {});
    INFO(r.a.ToString());
    REQUIRE_FALSE(r.a.ok());
    CHECK_THAT(r.a.message(), Catch::Contains("the pin for 'beta'"));
  }
  SECTION("a re-issued certificate no longer matches the old pin") {
    REQUIRE(IssueNode(ca.dir(), "alpha", kDefaultNodeCertDays, /*force=*/true).ok());
    PumpResult r = handshake({}, {{"alpha", alpha_fp}});
    CHECK_FALSE(r.b.ok());
  }
}

TEST_CASE("Session: garbage fed to a server is an error, not a crash", "[tls][session]") {
  uint64_t seed = Seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  TestCa ca;
  auto server_ctx = ca.Context("beta", Role::kServer);
  for (int i = 0; i < 300; ++i) {
    TlsSession server = MustServer(server_ctx.get());
    Status s;
    // Some runs start like a TLS handshake record, to get past the record
    // header into the handshake parser.
    std::string prefix = (i % 3 == 0) ? std::string("\x16\x03\x01", 3) : std::string();
    s = server.FeedCiphertext(prefix + RandomBytes(rng, 1 + rng() % 600));
    // Keep feeding garbage: the server must give up before 64 KiB.
    for (int j = 0; j < 64 && s.ok(); ++j) s = server.FeedCiphertext(RandomBytes(rng, 1024));
    INFO("run " << i);
    CHECK_FALSE(s.ok());
    CHECK_FALSE(server.handshake_done());
    CHECK(server.ReadPlaintext(std::span<uint8_t>()).status().code() == s.code());
    (void)server.TakeCiphertext();  // an alert, perhaps; must not crash
  }
}

TEST_CASE("Session: a corrupted byte anywhere in the client's first flight never crashes",
          "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  size_t hello_size = MustClient(client_ctx.get(), "beta").TakeCiphertext().size();
  REQUIRE(hello_size > 100);
  int failed = 0;
  for (size_t pos = 0; pos < hello_size; pos += 3) {
    TlsSession client = MustClient(client_ctx.get(), "beta");
    TlsSession server = MustServer(server_ctx.get());
    std::string hello = client.TakeCiphertext();
    hello[pos] = static_cast<char>(hello[pos] ^ 0x5a);
    Status s = server.FeedCiphertext(hello);
    PumpResult r = Pump(client, server);
    if (!s.ok() || !r.a.ok() || !r.b.ok() || !server.handshake_done()) ++failed;
  }
  // Almost every byte of a ClientHello is bound by the transcript hash.
  CHECK(failed > static_cast<int>(hello_size / 3) * 9 / 10);
}

TEST_CASE("Session: garbage after the handshake kills the session with an error",
          "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  REQUIRE((r.a.ok() && r.b.ok()));
  REQUIRE(client.WritePlaintext(std::string_view("real data")).ok());
  std::string ct = client.TakeCiphertext();
  ct[ct.size() / 2] ^= 1;                   // one flipped bit in an application record
  REQUIRE(server.FeedCiphertext(ct).ok());  // buffered; the record is opened on read
  uint8_t buf[64];
  auto n = server.ReadPlaintext(buf);
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(n.status().message(), Catch::Contains("TLS read failed"));
  CHECK_FALSE(server.handshake_done());
}

TEST_CASE("Session: buffering is bounded and writes are all or nothing", "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  CHECK(client.WritePlaintext(std::string_view("early")).code() == Code::kUnavailable);
  PumpResult r = Pump(client, server);
  REQUIRE((r.a.ok() && r.b.ok()));

  std::string big(TlsSession::kMaxPlaintextWrite + 1, 'x');
  CHECK(client.WritePlaintext(big).code() == Code::kInvalidArgument);
  CHECK(client.pending_ciphertext() == 0);

  std::string chunk(256 * 1024, 'y');
  int accepted = 0;
  Status s;
  while ((s = client.WritePlaintext(chunk)).ok()) ++accepted;
  CHECK(s.code() == Code::kUnavailable);
  CHECK(accepted == 4);
  CHECK(client.pending_ciphertext() >= TlsSession::kMaxPendingOutput);
  CHECK(client.pending_ciphertext() < TlsSession::kMaxPendingOutput + chunk.size() + 64 * 1024);

  // The receiver takes at most kMaxPendingInput unread bytes.
  std::string ct = client.TakeCiphertext();
  REQUIRE(ct.size() > TlsSession::kMaxPendingInput);
  Status over = server.FeedCiphertext(ct);
  CHECK(over.code() == Code::kLimitExceeded);
  CHECK(server.FeedCiphertext(std::string_view(ct).substr(0, 512 * 1024)).ok());
  CHECK(server.FeedCiphertext(std::string_view(ct).substr(512 * 1024, 600 * 1024)).code() ==
        Code::kLimitExceeded);
  // Rejected input was not consumed: the session is intact and reads on.
  std::vector<uint8_t> buf(64 * 1024);
  size_t total = 0;
  while (true) {
    auto n = server.ReadPlaintext(buf);
    REQUIRE(n.ok());
    if (*n == 0) break;
    total += *n;
  }
  CHECK(total > 400 * 1024);
  CHECK(server.FeedCiphertext(std::string_view(ct).substr(512 * 1024)).ok());
}

TEST_CASE("Session: shutdown sends close_notify and the peer sees the end", "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  TlsSession client = MustClient(client_ctx.get(), "beta");
  TlsSession server = MustServer(server_ctx.get());
  PumpResult r = Pump(client, server);
  REQUIRE((r.a.ok() && r.b.ok()));
  REQUIRE(client.WritePlaintext(std::string_view("last words")).ok());
  REQUIRE(client.Shutdown().ok());
  REQUIRE(client.Shutdown().ok());  // idempotent
  CHECK(client.WritePlaintext(std::string_view("more")).code() == Code::kAborted);
  REQUIRE(server.FeedCiphertext(client.TakeCiphertext()).ok());
  uint8_t buf[64];
  auto n = server.ReadPlaintext(buf);
  REQUIRE(n.ok());
  CHECK(std::string(reinterpret_cast<char*>(buf), *n) == "last words");
  n = server.ReadPlaintext(buf);
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(server.peer_closed());
  CHECK_FALSE(client.peer_closed());
}

TEST_CASE("Session: contexts and names are checked when a session is made", "[tls][session]") {
  TestCa ca;
  auto client_ctx = ca.Context("alpha", Role::kClient);
  auto server_ctx = ca.Context("beta", Role::kServer);
  CHECK(TlsSession::Server(client_ctx.get()).status().code() == Code::kInvalidArgument);
  CHECK(TlsSession::Client(client_ctx.get(), "Not Valid").status().code() ==
        Code::kInvalidArgument);
  CHECK(TlsSession::Client(client_ctx.get(), "").status().code() == Code::kInvalidArgument);
  SslCtxPtr lax(SSL_CTX_new(TLS_method()));
  CHECK(TlsSession::Client(lax.get(), "beta").status().code() == Code::kInvalidArgument);
  // A session outlives the caller's reference to its context.
  std::optional<TlsSession> client(MustClient(client_ctx.get(), "beta"));
  std::optional<TlsSession> server(MustServer(server_ctx.get()));
  client_ctx.reset();
  server_ctx.reset();
  PumpResult r = Pump(*client, *server);
  CHECK(r.a.ok());
  CHECK(r.b.ok());
  CHECK(server->peer_name() == "alpha");
}

}  // namespace
}  // namespace gossync::tls
