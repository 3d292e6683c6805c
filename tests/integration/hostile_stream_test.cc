// A peer with a valid certificate that breaks the framing, the msgpack, the
// protocol's order, or the content it serves (issue 6; issue 4's "oversized
// frame, wrong block hash, truncated stream"). Each is refused before
// anything big is allocated, the session is dropped with a logged reason and
// a counter, and no corrupt or partial file reaches data_dir.
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "agent/core/hash.h"
#include "agent/wire/repair_codec.h"
#include "tests/testutil/hostile_env.h"

namespace gossync::testutil {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

uint64_t AbortsOf(const HostileCluster& c, const std::vector<std::string>& counters) {
  uint64_t n = 0;
  for (const std::string& k : counters) n += c.Aborts(k);
  return n;
}

// Runs `act` on a fresh session (after the HELLOs) and expects the agent to
// end it, counting one more under any of `counters`.
void ExpectDropped(HostileCluster& c, const std::string& what,
                   const std::vector<std::string>& counters,
                   const std::function<void(TestPeer&)>& act) {
  INFO(what);
  uint64_t before = AbortsOf(c, counters);
  auto peer = c.Connect();
  act(*peer);
  CHECK(peer->WaitClosed(seconds(10)));
  bool counted =
      WaitFor([&] { return AbortsOf(c, counters) >= before + 1; }, seconds(10));
  INFO(c.LogTail());
  CHECK(counted);
}

std::vector<uint8_t> Frame(uint32_t length, const std::vector<uint8_t>& rest = {}) {
  std::vector<uint8_t> f(4 + rest.size());
  for (int i = 0; i < 4; ++i) f[size_t(i)] = uint8_t(length >> (24 - 8 * i));
  std::copy(rest.begin(), rest.end(), f.begin() + 4);
  return f;
}

std::string RandomContent(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& ch : s) ch = static_cast<char>(rng());
  return s;
}

TEST_CASE("Hostile stream: broken framing and msgpack are refused before allocating",
          "[integration][hostile]") {
  HostileCluster c;
  WriteFile(c.target->data_dir() + "/real.txt", "real content\n");
  c.Start();
  uint64_t rss_before = ProcRssKiB(c.target->pid());

  ExpectDropped(c, "length 0xffffffff", {"frame_too_large"},
                [](TestPeer& p) { REQUIRE(p.SendPlain(Frame(0xffffffff)).ok()); });
  ExpectDropped(c, "one byte over the maximum frame", {"frame_too_large"}, [](TestPeer& p) {
    // The agent hangs up on the header alone, so writing the rest may fail.
    (void)p.SendPlain(Frame((4u << 20) + 1, std::vector<uint8_t>(64 << 10, 0x90)));
  });
  ExpectDropped(c, "an empty frame", {"connection", "malformed"},
                [](TestPeer& p) { REQUIRE(p.SendPlain(Frame(0)).ok()); });
  ExpectDropped(c, "msgpack dd ff ff ff ff (an array of 4G elements)",
                {"malformed", "limit_exceeded"},
                [](TestPeer& p) { REQUIRE(p.SendFrame({0xdd, 0xff, 0xff, 0xff, 0xff}).ok()); });
  ExpectDropped(c, "msgpack str32 of 4 GiB", {"malformed", "limit_exceeded"}, [](TestPeer& p) {
    REQUIRE(p.SendFrame({0x92, 0x03, 0xdb, 0xff, 0xff, 0xff, 0xff}).ok());
  });
  ExpectDropped(c, "10,000-deep nesting", {"malformed", "limit_exceeded"}, [](TestPeer& p) {
    std::vector<uint8_t> body(10000, 0x91);
    body.push_back(0xc0);
    REQUIRE(p.SendFrame(body).ok());
  });
  ExpectDropped(c, "10,000-deep maps", {"malformed", "limit_exceeded"}, [](TestPeer& p) {
    std::vector<uint8_t> body;
    for (int i = 0; i < 10000; ++i) {
      body.push_back(0x81);
      body.push_back(0x00);
    }
    body.push_back(0xc0);
    REQUIRE(p.SendFrame(body).ok());
  });
  ExpectDropped(c, "a map where a message belongs", {"malformed", "limit_exceeded"},
                [](TestPeer& p) { REQUIRE(p.SendFrame({0x81, 0x00, 0x00}).ok()); });
  ExpectDropped(c, "ENTRIES whose count lies", {"malformed", "limit_exceeded"}, [](TestPeer& p) {
    REQUIRE(p.SendFrame({0x92, 0x03, 0xdd, 0x00, 0x10, 0x00, 0x00}).ok());
  });
  ExpectDropped(c, "trailing bytes after the message", {"malformed", "limit_exceeded"},
                [](TestPeer& p) {
                  std::vector<uint8_t> b = wire::EncodeMessage(core::FinMsg{});
                  b.push_back(0xc0);
                  REQUIRE(p.SendFrame(b).ok());
                });
  ExpectDropped(c, "random msgpack-ish garbage", {"malformed", "limit_exceeded"}, [](TestPeer& p) {
    std::mt19937 rng(42);
    std::vector<uint8_t> b(2000);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    b[0] = 0x93;  // an array, so it is not a plain scalar
    REQUIRE(p.SendFrame(b).ok());
  });
  ExpectDropped(c, "1,025 entries in one ENTRIES", {"malformed", "limit_exceeded", "too_many_items"},
                [](TestPeer& p) {
                  core::EntriesMsg m;
                  for (int i = 0; i < 1025; ++i) {
                    m.entries.push_back(FileEntry("f" + std::to_string(i), "x"));
                  }
                  REQUIRE(p.Send(m).ok());
                });
  ExpectDropped(c, "1,025 block indexes", {"malformed", "limit_exceeded", "too_many_items"},
                [](TestPeer& p) {
                  core::BlockReqMsg m{1, "real.txt", Sha256Of("real content\n"), {}};
                  m.indexes.assign(1025, 0);
                  REQUIRE(p.Send(m).ok());
                });
  // TLS-level and TCP-level breakage.
  ExpectDropped(c, "garbage under TLS", {"connection", "truncated"}, [](TestPeer& p) {
    REQUIRE(p.SendWire(std::vector<uint8_t>(300, 0x17)).ok());
  });
  ExpectDropped(c, "a frame cut short, then close_notify", {"truncated"}, [](TestPeer& p) {
    REQUIRE(p.SendPlain(Frame(100, std::vector<uint8_t>(10, 0x90))).ok());
    p.CloseNotify();
  });
  ExpectDropped(c, "a frame cut short, then the TCP stream ends", {"truncated", "connection"},
                [](TestPeer& p) {
                  REQUIRE(p.SendPlain(Frame(100, std::vector<uint8_t>(10, 0x90))).ok());
                  p.ShutdownWrite();
                });
  ExpectDropped(c, "the initiator leaves mid-session without FIN", {"disconnected", "connection"},
                [](TestPeer& p) { p.CloseNotify(); });

  // Protocol order and identity.
  auto raw_first = [&](const core::RepairMessage& m, const std::vector<std::string>& counters,
                       const std::string& what) {
    INFO(what);
    uint64_t before = AbortsOf(c, counters);
    Result<std::unique_ptr<TestPeer>> p = TestPeer::Tls(c.target->repair_address(), c.mallory,
                                                       "anode");
    REQUIRE(p.ok());
    REQUIRE((*p)->Send(m).ok());
    CHECK((*p)->WaitClosed(seconds(10)));
    CHECK(WaitFor([&] { return AbortsOf(c, counters) > before; }, seconds(10)));
  };
  raw_first(core::EntriesMsg{}, {"protocol"}, "ENTRIES before HELLO");
  raw_first(PeerHello("bnode"), {"name_mismatch"}, "HELLO with another member's name");
  raw_first(PeerHello("anode"), {"name_mismatch"}, "HELLO with the agent's own name");
  raw_first(PeerHello("mallory", 5), {"depth_mismatch"}, "HELLO with another depth");
  core::HelloMsg v2 = PeerHello("mallory");
  v2.version = core::kRepairProtocolVersion + 1;
  raw_first(v2, {"version_mismatch"}, "HELLO of another version");
  ExpectDropped(c, "a second HELLO", {"protocol"},
                [](TestPeer& p) { REQUIRE(p.Send(PeerHello("mallory")).ok()); });
  ExpectDropped(c, "FIN_ACK to nothing", {"protocol"},
                [](TestPeer& p) { REQUIRE(p.Send(core::FinAckMsg{}).ok()); });

  // An unknown message type is skipped, and the session goes on.
  {
    auto peer = c.Connect();
    REQUIRE(peer->SendFrame({0x92, 0xcc, 0xc8, 0x01}).ok());  // [200, 1]
    ServeResult r = Serve(*peer, {});
    CHECK(r.finished);
  }

  // Memory: nothing above was allocated by its claimed size.
  CheckMemory("broken framing", rss_before, ProcRssKiB(c.target->pid()));
  c.ExpectIntact(c.tree());
}

TEST_CASE("Hostile stream: content that does not match its hash is never committed",
          "[integration][hostile]") {
  HostileCluster c;
  c.Start();
  const std::string small = "the content the entry promises\n";
  const std::string big = RandomContent(300 * 1024, 7);  // three blocks

  SECTION("a small file whose one block is wrong") {
    uint64_t before = c.Aborts("bad_block");
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("evil.txt", small)}}).ok());
    ServeOptions o;
    o.tamper = [](const std::string&, uint32_t, std::vector<uint8_t>& d) { d[0] ^= 1; };
    ServeResult r = Serve(*peer, {{"evil.txt", small}}, o);
    CHECK(r.aborted.has_value());
    CHECK(c.WaitAborts("bad_block", before + 1));
  }
  SECTION("a small file's block of another length") {
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("evil.txt", small)}}).ok());
    ServeOptions o;
    o.tamper = [](const std::string&, uint32_t, std::vector<uint8_t>& d) {
      d.resize(d.size() * 1000, 'A');
    };
    ServeResult r = Serve(*peer, {{"evil.txt", small}}, o);
    CHECK(r.aborted.has_value());
  }
  SECTION("a large file with one block that does not match the block list") {
    uint64_t before = c.Aborts("bad_block");
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("big.bin", big)}}).ok());
    ServeOptions o;
    o.tamper = [](const std::string&, uint32_t i, std::vector<uint8_t>& d) {
      if (i == 1) d[100] ^= 0x80;
    };
    ServeResult r = Serve(*peer, {{"big.bin", big}}, o);
    CHECK(r.aborted.has_value());
    CHECK(c.WaitAborts("bad_block", before + 1));
  }
  SECTION("a large file whose block list lies: the whole-file hash catches it") {
    uint64_t before = c.Aborts("bad_content");
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("big.bin", big)}}).ok());
    ServeOptions o;
    o.lie_in_blocklist = true;
    o.tamper = [](const std::string&, uint32_t i, std::vector<uint8_t>& d) {
      if (i == 2) d[5] ^= 0x01;
    };
    ServeResult r = Serve(*peer, {{"big.bin", big}}, o);
    CHECK(r.aborted.has_value());
    CHECK(c.WaitAborts("bad_content", before + 1));
  }
  SECTION("the stream ends in the middle of a block") {
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::EntriesMsg{{FileEntry("big.bin", big)}}).ok());
    bool cut = false;
    for (int i = 0; i < 20 && !cut; ++i) {
      Result<core::RepairMessage> m = peer->Receive(seconds(5));
      REQUIRE(m.ok());
      if (auto* lq = std::get_if<core::BlockListReqMsg>(&*m)) {
        core::BlockListMsg l{lq->req, big.size(), core::kDefaultBlockSize, 0, {}, true};
        for (size_t off = 0; off < big.size(); off += core::kDefaultBlockSize) {
          l.hashes.push_back(Sha256Of(big.substr(off, core::kDefaultBlockSize)));
        }
        REQUIRE(peer->Send(l).ok());
      } else if (auto* q = std::get_if<core::BlockReqMsg>(&*m)) {
        std::string b0 = big.substr(0, core::kDefaultBlockSize);
        REQUIRE(peer->Send(core::BlockMsg{q->req, q->indexes[0], Bytes(b0)}).ok());
        std::vector<uint8_t> f = wire::EncodeFrame(wire::EncodeMessage(
            core::BlockMsg{q->req, q->indexes[1], Bytes(big.substr(core::kDefaultBlockSize,
                                                                    core::kDefaultBlockSize))}));
        f.resize(f.size() / 2);
        REQUIRE(peer->SendPlain(f).ok());
        peer->CloseNotify();
        cut = true;
      }
    }
    REQUIRE(cut);
    CHECK(peer->WaitClosed(seconds(10)));
    CHECK(c.WaitAborts("truncated", 1));
  }
  SECTION("a block nobody asked for") {
    uint64_t before = c.Aborts("unrequested_block");
    auto peer = c.Connect();
    REQUIRE(peer->Send(core::BlockMsg{42, 0, Bytes(small)}).ok());
    CHECK(peer->WaitClosed(seconds(10)));
    CHECK(c.WaitAborts("unrequested_block", before + 1));
  }
  CHECK_FALSE(fs::exists(c.target->data_dir() + "/evil.txt"));
  CHECK_FALSE(fs::exists(c.target->data_dir() + "/big.bin"));
  c.ExpectIntact(c.tree());
}

TEST_CASE("Hostile stream: a file that changes on disk after it was hashed is not served",
          "[integration][hostile]") {
  HostileCluster c;
  const std::string old_content = RandomContent(1000, 1);
  const std::string big_old = RandomContent(300 * 1024, 2);
  WriteFile(c.target->data_dir() + "/f.txt", old_content);
  WriteFile(c.target->data_dir() + "/big.bin", big_old);
  c.Start();
  REQUIRE(WaitFor([&] { return ReadFile(c.good->data_dir() + "/big.bin") == big_old; },
                  seconds(20)));
  auto peer = c.Connect();
  // The index holds the old stat and hash; the file changes while the agent
  // is stopped, and the requests are already waiting when it resumes.
  c.target->Pause();
  WriteFile(c.target->data_dir() + "/f.txt", RandomContent(1000, 3));
  std::string big_new = big_old;
  big_new[200 * 1024] ^= 0x55;
  WriteFile(c.target->data_dir() + "/big.bin", big_new);
  REQUIRE(peer->Send(core::BlockReqMsg{1, "f.txt", Sha256Of(old_content), {0}}).ok());
  REQUIRE(peer->Send(core::BlockListReqMsg{2, "big.bin", Sha256Of(big_old)}).ok());
  REQUIRE(peer->Send(core::BlockReqMsg{3, "big.bin", Sha256Of(big_old), {0, 1, 2}}).ok());
  c.target->Resume();
  int errors = 0;
  for (int i = 0; i < 3; ++i) {
    Result<core::RepairMessage> m = peer->Receive(seconds(5));
    REQUIRE(m.ok());
    INFO(core::MessageName(*m));
    auto* e = std::get_if<core::ReqErrorMsg>(&*m);
    REQUIRE(e != nullptr);
    // "changed" while the index still holds the old stat; "not_found" if
    // the watcher re-indexed first.
    CHECK((e->code == uint8_t(core::ReqErrorCode::kChanged) ||
           e->code == uint8_t(core::ReqErrorCode::kNotFound)));
    errors += e->code == uint8_t(core::ReqErrorCode::kChanged);
  }
  CHECK(errors >= 1);
  Serve(*peer, {});
  // The good peer ends with the new content, never a mix.
  REQUIRE(WaitFor([&] { return ReadFile(c.good->data_dir() + "/big.bin") == big_new; },
                  seconds(20)));
  c.ExpectIntact(TreeFingerprint(c.target->data_dir()));
}

}  // namespace
}  // namespace gossync::testutil

namespace gossync::testutil {
namespace {

TEST_CASE("Hostile stream: huge files announced with full block lists cost bounded memory",
          "[integration][hostile]") {
  HostileCluster c("idle_timeout_s = 3\n");
  c.Start();
  uint64_t rss_before = ProcRssKiB(c.target->pid());
  auto peer = c.Connect();
  // Files of 2^20 blocks (128 GiB), the most the protocol moves; each block
  // list is 32 MiB. Their content never comes.
  const uint64_t blocks = uint64_t{1} << 20;
  core::EntriesMsg m;
  for (int i = 0; i < 8; ++i) {
    core::Entry e = FileEntry("huge" + std::to_string(i) + ".bin", "x");
    e.size = blocks * core::kDefaultBlockSize;
    e.hash[0] = uint8_t(i);
    m.entries.push_back(e);
  }
  REQUIRE(peer->Send(m).ok());
  uint64_t peak = 0;
  int lists = 0;
  for (;;) {
    Result<core::RepairMessage> r = peer->Receive(seconds(5));
    peak = std::max(peak, ProcRssKiB(c.target->pid()));
    if (!r.ok()) break;
    auto* q = std::get_if<core::BlockListReqMsg>(&*r);
    if (!q) continue;
    ++lists;
    for (uint64_t first = 0; first < blocks; first += 4096) {
      core::BlockListMsg l{q->req, blocks * core::kDefaultBlockSize, core::kDefaultBlockSize,
                           uint32_t(first), std::vector<core::Hash256>(4096), false};
      for (auto& h : l.hashes) h[0] = 1;
      l.last = first + 4096 >= blocks;
      if (!peer->Send(l).ok()) break;
    }
    peak = std::max(peak, ProcRssKiB(c.target->pid()));
  }
  for (int i = 0; i < 20; ++i) {
    peak = std::max(peak, ProcRssKiB(c.target->pid()));
    std::this_thread::sleep_for(milliseconds(100));
  }
  CheckMemory(std::to_string(lists) + " huge block lists", rss_before, peak);
  c.ExpectIntact(c.tree());
}

}  // namespace
}  // namespace gossync::testutil

namespace gossync::testutil {
namespace {

TEST_CASE("Hostile stream: a flood of ENTRIES costs bounded memory", "[integration][hostile]") {
  HostileCluster c("idle_timeout_s = 3\n");
  c.Start();
  uint64_t rss_before = ProcRssKiB(c.target->pid());
  auto peer = c.Connect();
  // 204,800 files offered (20 MB on the wire), whose content never comes.
  for (int m = 0; m < 200; ++m) {
    core::EntriesMsg msg;
    for (int i = 0; i < 1024; ++i) {
      msg.entries.push_back(
          FileEntry("d" + std::to_string(m) + "/f" + std::to_string(i), "x" + std::to_string(i)));
    }
    REQUIRE(peer->Send(msg).ok());
  }
  uint64_t peak = 0;
  // Until the agent gives up on us (idle timeout), reading what it sends.
  for (int i = 0; i < 100 && !peer->closed(); ++i) {
    peak = std::max(peak, ProcRssKiB(c.target->pid()));
    (void)peer->Receive(milliseconds(100));
  }
  CheckMemory("ENTRIES flood", rss_before, peak);
  c.ExpectIntact(c.tree());
}

}  // namespace
}  // namespace gossync::testutil
