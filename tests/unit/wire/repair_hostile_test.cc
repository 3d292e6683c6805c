// RepairSession against a scripted, hostile peer: every violation ends the
// session with a reason and a counter, and nothing is applied.
#include <catch2/catch.hpp>

#include "agent/core/path.h"
#include "agent/wire/repair_codec.h"
#include "tests/testutil/repair_harness.h"

namespace gossync::testutil {
namespace {

using namespace core;

// An honest session (node "beta") facing a scripted peer "evil".
struct Victim {
  explicit Victim(bool initiator = false, bool dry_run = false) : node("beta", 2) {
    for (int i = 0; i < 200; ++i)
      node.WriteFile("f" + std::to_string(i), "content " + std::to_string(i));
    MemNode evil("evil", 66);
    RepairOptions o = SessionOptions(node, evil, initiator);
    o.dry_run = dry_run;
    ep = std::make_unique<Endpoint>(&node, std::move(o));
    ep->Handle(ep->session->Start(now), now);
    root = node.data().Root();
    Drain();
  }

  // Through the codec and framing, as bytes from the wire.
  void Feed(const RepairMessage& m) { FeedBytes(wire::EncodeMessageFrame(m)); }
  void FeedBytes(const std::vector<uint8_t>& bytes) { ep->Receive(bytes, ++now); }
  // Straight into the session, past the codec's checks.
  void Direct(RepairMessage m) {
    ++now;
    ep->Handle(ep->session->OnMessage(now, std::move(m)), now);
  }
  void Hello(Hash256 peer_root = Sha256(std::string_view("other root"))) {
    HelloMsg h;
    h.name = "evil";
    h.depth = kDefaultTreeDepth;
    h.root = peer_root;
    Feed(h);
  }

  // The messages the victim sent since the last Drain.
  std::vector<RepairMessage> Drain() {
    wire::FrameDecoder dec;
    std::vector<std::vector<uint8_t>> frames;
    REQUIRE(dec.Feed(ep->outbox, &frames).ok());
    ep->outbox.clear();
    std::vector<RepairMessage> out;
    for (const auto& f : frames) {
      auto m = wire::DecodeMessage(f);
      REQUIRE(m.ok());
      out.push_back(std::move(m).value());
    }
    return out;
  }

  // The session ended with `counter`, told the peer (unless told not to),
  // and changed nothing.
  void ExpectAbort(const std::string& counter, bool notified = true) {
    REQUIRE(ep->aborted);
    INFO("reason: " << ep->aborted->reason);
    CHECK(ep->aborted->counter == counter);
    CHECK_FALSE(ep->aborted->reason.empty());
    std::vector<RepairMessage> sent = Drain();
    if (notified) {
      REQUIRE_FALSE(sent.empty());
      REQUIRE(std::holds_alternative<AbortMsg>(sent.back()));
      CHECK_FALSE(std::get<AbortMsg>(sent.back()).reason.empty());
    }
    ExpectNothingApplied();
  }
  void ExpectNothingApplied() {
    CHECK(node.data().Root() == root);
    CHECK(ep->driver.counters().commits == 0);
    CHECK(ep->driver.counters().applies == 0);
    CHECK(ep->driver.counters().copies == 0);
  }

  MemNode node;
  std::unique_ptr<Endpoint> ep;
  int64_t now = 1000;
  Hash256 root{};
};

Entry FileEntry(std::string path, std::string_view content) {
  Entry e;
  e.path = std::move(path);
  e.mode = 0644;
  e.size = content.size();
  e.hash = Sha256(content);
  e.vv = VersionVector({{66, 1}});
  e.hlc = Hlc::Pack(1'800'000'000'000, 0);
  e.origin = "evil";
  return e;
}

TEST_CASE("Repair hostile peer: paths outside the tree are refused by codec and session",
          "[repair_hostile]") {
  const std::vector<std::string> bad = {"../x",    "/etc/x", "a/../../x", "a//b",
                                        "",        "a/./b",  "x/..",      std::string("x\0y", 3),
                                        "a\\..\\x"};
  for (const std::string& path : bad) {
    INFO("path " << path);
    {
      Victim v;
      v.Hello();
      v.Feed(EntriesMsg{{FileEntry("fine.txt", "ok"), FileEntry(path, "x")}});
      v.ExpectAbort("malformed");
    }
    {
      Victim v;
      v.Hello();
      v.Direct(EntriesMsg{{FileEntry("fine.txt", "ok"), FileEntry(path, "x")}});
      v.ExpectAbort("bad_path");
    }
    {
      Victim v;
      v.Hello();
      v.Feed(BlockReqMsg{1, path, Sha256(std::string_view("x")), {0}});
      v.ExpectAbort("bad_path");
    }
  }
}

TEST_CASE("Repair hostile peer: entries failing ValidateEntry are refused", "[repair_hostile]") {
  std::vector<Entry> bad;
  Entry link = FileEntry("l", "");
  link.kind = EntryKind::kSymlink;
  link.target = "/etc/passwd";
  link.hash = Sha256(std::string_view("something else"));
  bad.push_back(link);
  Entry dir = FileEntry("d", "x");
  dir.kind = EntryKind::kDirectory;  // with a content hash
  bad.push_back(dir);
  Entry tomb = FileEntry("t", "x");
  tomb.deleted = true;  // a tombstone with a hash
  bad.push_back(tomb);
  Entry origin = FileEntry("o", "x");
  origin.origin = "Not A Name";
  bad.push_back(origin);
  Entry mode = FileEntry("m", "x");
  mode.mode = 0170777;
  bad.push_back(mode);
  for (const Entry& e : bad) {
    INFO("entry " << e.path);
    Victim v;
    v.Hello();
    v.Direct(EntriesMsg{{FileEntry("fine.txt", "ok"), e}});
    v.ExpectAbort("bad_entry");
    Victim w;
    w.Hello();
    w.Feed(EntriesMsg{{FileEntry("fine.txt", "ok"), e}});
    w.ExpectAbort("malformed");
  }
}

TEST_CASE("Repair hostile peer: node addresses out of range are refused", "[repair_hostile]") {
  std::vector<RepairMessage> bad = {
      NodesMsg{0, {NodeItem{0, {}}}},
      NodesMsg{5, {NodeItem{0, {}}}},
      NodesMsg{1, {NodeItem{1, {}}}},
      NodesMsg{2, {NodeItem{16, {}}}},
      NodesMsg{4, {NodeItem{0, {}}, NodeItem{4096, {}}}},
      LeavesMsg{{LeafItem{65536, {}}}},
      LeavesMsg{{LeafItem{7, {KeyDigest{0xffff'0000'0000'0000, 1}}}}},  // key of bucket 65535
  };
  for (const RepairMessage& m : bad) {
    Victim v;
    v.Hello();
    v.Feed(m);
    v.ExpectAbort("bad_node");
  }
}

TEST_CASE("Repair hostile peer: too many items in one message", "[repair_hostile]") {
  EntriesMsg many;
  for (size_t i = 0; i <= kMaxEntriesItems; ++i)
    many.entries.push_back(FileEntry("e" + std::to_string(i), "x"));
  {
    Victim v;
    v.Hello();
    v.Feed(many);
    v.ExpectAbort("limit_exceeded");
  }
  std::vector<RepairMessage> direct = {
      many,
      NodesMsg{1, std::vector<NodeItem>(kMaxNodesItems + 1)},
      WantMsg{std::vector<uint64_t>(kMaxWantKeys + 1)},
      LeavesMsg{std::vector<LeafItem>(kMaxLeavesItems + 1)},
      BlockReqMsg{1, "f1", Sha256(std::string_view("content 1")),
                  std::vector<uint32_t>(kMaxBlockReqIndexes + 1)},
  };
  for (const RepairMessage& m : direct) {
    INFO(MessageName(m));
    Victim v;
    v.Hello();
    v.Direct(m);
    v.ExpectAbort("too_many_items");
  }
}

// Gets the victim to pull `e` and returns its request.
template <typename Req>
Req PullRequest(Victim& v, const Entry& e) {
  v.Hello();
  v.Feed(EntriesMsg{{e}});
  for (RepairMessage& m : v.Drain()) {
    if (auto* r = std::get_if<Req>(&m)) return *r;
  }
  FAIL("no request");
  return {};
}

TEST_CASE("Repair hostile peer: a block with a wrong hash or length is refused, nothing written",
          "[repair_hostile]") {
  const std::string content(100, 'c');
  SECTION("wrong bytes") {
    Victim v;
    BlockReqMsg r = PullRequest<BlockReqMsg>(v, FileEntry("new.txt", content));
    REQUIRE(r.indexes == std::vector<uint32_t>{0});
    v.Feed(BlockMsg{r.req, 0, std::vector<uint8_t>(100, 'X')});
    v.ExpectAbort("bad_block");
    CHECK(v.node.data().Find("new.txt") == nullptr);
  }
  SECTION("wrong length") {
    Victim v;
    BlockReqMsg r = PullRequest<BlockReqMsg>(v, FileEntry("new.txt", content));
    v.Feed(BlockMsg{r.req, 0, std::vector<uint8_t>(content.begin(), content.end() - 1)});
    v.ExpectAbort("bad_block");
  }
  SECTION("a block never requested") {
    Victim v;
    BlockReqMsg r = PullRequest<BlockReqMsg>(v, FileEntry("new.txt", content));
    v.Feed(BlockMsg{r.req + 1, 0, std::vector<uint8_t>(content.begin(), content.end())});
    v.ExpectAbort("unrequested_block");
  }
  SECTION("an index never requested") {
    Victim v;
    BlockReqMsg r = PullRequest<BlockReqMsg>(v, FileEntry("new.txt", content));
    v.Feed(BlockMsg{r.req, 1, {}});
    v.ExpectAbort("unrequested_block");
  }
  SECTION("the right block is written and committed") {
    Victim v;
    BlockReqMsg r = PullRequest<BlockReqMsg>(v, FileEntry("new.txt", content));
    v.Feed(BlockMsg{r.req, 0, std::vector<uint8_t>(content.begin(), content.end())});
    REQUIRE_FALSE(v.ep->ended());
    REQUIRE(v.node.data().Content("new.txt"));
    CHECK(*v.node.data().Content("new.txt") == content);
  }
  SECTION("a REQ_ERROR gives the file up for this session, no more") {
    Victim v;
    BlockReqMsg r = PullRequest<BlockReqMsg>(v, FileEntry("new.txt", content));
    v.Feed(ReqErrorMsg{r.req, static_cast<uint8_t>(ReqErrorCode::kChanged), "changed"});
    CHECK_FALSE(v.ep->ended());
    v.ExpectNothingApplied();
    CHECK(v.ep->session->stats().skipped == 1);
    v.Feed(FinMsg{});
    auto sent = v.Drain();
    REQUIRE_FALSE(sent.empty());
    CHECK(std::holds_alternative<FinAckMsg>(sent.back()));
  }
  SECTION("answers to requests never made") {
    Victim v;
    v.Hello();
    v.Feed(ReqErrorMsg{77, 1, "?"});
    v.ExpectAbort("unrequested");
    Victim w;
    w.Hello();
    w.Feed(BlockListMsg{77, 10, 4096, 0, {}, true});
    w.ExpectAbort("unrequested");
  }
}

TEST_CASE("Repair hostile peer: a lying block list is caught", "[repair_hostile]") {
  std::string content(3 * 4096 + 5, 'z');
  Entry e = FileEntry("big.bin", content);
  auto blocks_of = [](const std::string& c) {
    std::vector<Hash256> h;
    for (size_t off = 0; off < c.size(); off += 4096)
      h.push_back(Sha256(std::string_view(c).substr(off, 4096)));
    return h;
  };
  SECTION("wrong size or count") {
    Victim v;
    BlockListReqMsg r = PullRequest<BlockListReqMsg>(v, e);
    CHECK(r.path == "big.bin");
    v.Feed(BlockListMsg{r.req, e.size + 1, 4096, 0, blocks_of(content), true});
    v.ExpectAbort("bad_blocklist");
    Victim w;
    r = PullRequest<BlockListReqMsg>(w, e);
    w.Feed(BlockListMsg{r.req, e.size, 4096, 0, {Hash256{}}, true});
    w.ExpectAbort("bad_blocklist");
  }
  SECTION("blocks that match a fake list do not make a file") {
    Victim v;
    BlockListReqMsg r = PullRequest<BlockListReqMsg>(v, e);
    std::string fake(content.size(), 'f');
    v.Feed(BlockListMsg{r.req, e.size, 4096, 0, blocks_of(fake), true});
    auto sent = v.Drain();
    REQUIRE(sent.size() == 1);
    BlockReqMsg req = std::get<BlockReqMsg>(sent[0]);
    CHECK(req.indexes.size() == 4);
    for (uint32_t i : req.indexes) {
      std::string_view b = std::string_view(fake).substr(i * 4096, 4096);
      v.Feed(BlockMsg{req.req, i, std::vector<uint8_t>(b.begin(), b.end())});
    }
    v.ExpectAbort("bad_content");
    CHECK(v.node.data().Find("big.bin") == nullptr);
  }
}

TEST_CASE("Repair hostile peer: framing violations end the session", "[repair_hostile]") {
  SECTION("an oversized frame, from its header") {
    Victim v;
    v.Hello();
    v.FeedBytes({0x00, 0x40, 0x00, 0x01});
    v.ExpectAbort("frame_too_large");
  }
  SECTION("a truncated stream") {
    Victim v;
    v.Hello();
    std::vector<uint8_t> frame = wire::EncodeMessageFrame(EntriesMsg{{FileEntry("a", "b")}});
    frame.resize(frame.size() / 2);
    v.FeedBytes(frame);
    CHECK_FALSE(v.ep->ended());
    v.ep->PeerClosed(++v.now);
    v.ExpectAbort("truncated");
  }
  SECTION("a body that is not msgpack") {
    Victim v;
    v.Hello();
    v.FeedBytes(wire::EncodeFrame(std::vector<uint8_t>{0xc1}));
    v.ExpectAbort("malformed");
  }
  SECTION("a close mid-session, at a frame boundary") {
    Victim v;
    v.Hello();
    v.ep->PeerClosed(++v.now);
    v.ExpectAbort("disconnected", false);
  }
}

TEST_CASE("Repair hostile peer: the handshake is checked", "[repair_hostile]") {
  auto with = [](auto&& change, const char* counter) {
    Victim v;
    HelloMsg h;
    h.name = "evil";
    h.depth = kDefaultTreeDepth;
    change(h);
    v.Feed(h);
    v.ExpectAbort(counter);
  };
  with([](HelloMsg& h) { h.name = "mallory"; }, "name_mismatch");
  with([](HelloMsg& h) { h.name = "Evil!"; }, "name_mismatch");
  with([](HelloMsg& h) { h.version = 1; }, "version_mismatch");  // before dots
  with([](HelloMsg& h) { h.version = kRepairProtocolVersion + 1; }, "version_mismatch");
  with([](HelloMsg& h) { h.depth = 3; }, "depth_mismatch");
  {
    Victim v;
    v.Feed(NodesMsg{1, {NodeItem{0, {}}}});
    v.ExpectAbort("protocol");
  }
  {
    Victim v;
    v.Hello();
    v.Hello();
    v.ExpectAbort("protocol");
  }
}

TEST_CASE("Repair hostile peer: the serving side reads only what it holds, within bounds",
          "[repair_hostile]") {
  const Hash256 h1 = Sha256(std::string_view("content 1"));
  SECTION("a path or hash we do not hold gets REQ_ERROR, and the session goes on") {
    Victim v;
    v.Hello();
    v.Feed(BlockReqMsg{1, "nope", h1, {0}});
    v.Feed(BlockReqMsg{2, "f2", h1, {0}});  // f2 holds another hash
    auto sent = v.Drain();
    REQUIRE(sent.size() == 2);
    CHECK(std::get<ReqErrorMsg>(sent[0]).code == static_cast<uint8_t>(ReqErrorCode::kNotFound));
    CHECK(std::get<ReqErrorMsg>(sent[1]).req == 2);
    CHECK(v.ep->driver.counters().reads == 0);
    v.Feed(BlockReqMsg{3, "f1", h1, {0}});
    sent = v.Drain();
    REQUIRE(sent.size() == 1);
    CHECK(std::get<BlockMsg>(sent[0]).data.size() == 9);
  }
  SECTION("a block index past the end") {
    Victim v;
    v.Hello();
    v.Feed(BlockReqMsg{1, "f1", h1, {1}});
    v.ExpectAbort("bad_block");
  }
  SECTION("more blocks outstanding than the window") {
    // A bare session whose reads are never answered.
    MemNode n("beta", 2), evil("evil", 66);
    n.WriteFile("f1", "content 1");
    RepairSession s(SessionOptions(n, evil, false), &n.data());
    (void)s.Start(0);
    HelloMsg h;
    h.name = "evil";
    h.depth = kDefaultTreeDepth;
    (void)s.OnMessage(1, h);
    for (uint32_t r = 1; r <= kMaxInFlightBlocks; ++r) {
      auto acts = s.OnMessage(2, BlockReqMsg{r, "f1", h1, {0}});
      REQUIRE(acts.size() == 1);
      REQUIRE(std::holds_alternative<repair::ReadBlocks>(acts[0]));
    }
    auto acts = s.OnMessage(3, BlockReqMsg{kMaxInFlightBlocks + 1, "f1", h1, {0}});
    REQUIRE(s.done());
    CHECK(std::get<repair::Abort>(acts.back()).counter == "too_many_requests");
  }
  SECTION("more bytes outstanding than the window") {
    MemNode n("beta", 2), evil("evil", 66);
    const std::string big(9 << 20, 'b');  // 72 blocks of 128 KiB: 9 MiB
    n.WriteFile("big", big);
    const Hash256 hb = Sha256(big);
    RepairOptions o = SessionOptions(n, evil, false);
    o.block_size = 128 * 1024;
    RepairSession s(o, &n.data());
    (void)s.Start(0);
    HelloMsg h;
    h.name = "evil";
    h.depth = kDefaultTreeDepth;
    (void)s.OnMessage(1, h);
    std::vector<uint32_t> first(64);
    for (uint32_t i = 0; i < 64; ++i) first[i] = i;  // 8 MiB: the whole window
    auto acts = s.OnMessage(2, BlockReqMsg{1, "big", hb, first});
    REQUIRE(!s.done());
    acts = s.OnMessage(3, BlockReqMsg{2, "big", hb, {64}});
    REQUIRE(s.done());
    CHECK(std::get<repair::Abort>(acts.back()).counter == "too_many_requests");
  }
  SECTION("a reused request id") {
    MemNode n("beta", 2), evil("evil", 66);
    n.WriteFile("f1", "content 1");
    RepairSession s(SessionOptions(n, evil, false), &n.data());
    (void)s.Start(0);
    HelloMsg h;
    h.name = "evil";
    h.depth = kDefaultTreeDepth;
    (void)s.OnMessage(1, h);
    (void)s.OnMessage(2, BlockReqMsg{5, "f1", h1, {0}});
    auto acts = s.OnMessage(3, BlockReqMsg{5, "f1", h1, {0}});
    CHECK(std::get<repair::Abort>(acts.back()).counter == "protocol");
  }
  SECTION("no content moves in a dry run") {
    Victim v(false, true);
    v.Hello();
    v.Feed(BlockReqMsg{1, "f1", h1, {0}});
    v.ExpectAbort("protocol");
  }
}

TEST_CASE("RepairSession: unknown message types are skipped and counted", "[repair_hostile]") {
  Victim v;
  v.Hello();
  v.Feed(UnknownMsg{42});
  v.Feed(UnknownMsg{255});
  CHECK_FALSE(v.ep->ended());
  CHECK(v.ep->session->stats().unknown_messages == 2);
  v.Feed(FinMsg{});
  auto sent = v.Drain();
  REQUIRE_FALSE(sent.empty());
  CHECK(std::holds_alternative<FinAckMsg>(sent.back()));
  v.ep->PeerClosed(++v.now);
  REQUIRE(v.ep->finished);
}

TEST_CASE("RepairSession: only the initiator sends FIN, only the responder FIN_ACK",
          "[repair_hostile]") {
  {
    Victim v(/*initiator=*/true);
    v.Hello(v.node.data().Root());
    auto sent = v.Drain();
    REQUIRE_FALSE(sent.empty());
    CHECK(std::holds_alternative<FinMsg>(sent.back()));
    v.Feed(FinMsg{});
    v.ExpectAbort("protocol");
  }
  {
    Victim v;
    v.Hello();
    v.Feed(FinAckMsg{});
    v.ExpectAbort("protocol");
  }
  {
    Victim v;
    v.Hello();
    v.Feed(AbortMsg{"bye\nforged log line"});
    v.ExpectAbort("peer_abort", false);
    CHECK(v.ep->aborted->reason.find('\n') == std::string::npos);
  }
}

TEST_CASE("RepairSession: idle and total timeouts", "[repair_hostile]") {
  {
    Victim v;
    v.Hello();
    v.ep->Handle(v.ep->session->OnTick(v.now + 29'000), v.now);
    CHECK_FALSE(v.ep->ended());
    v.ep->Handle(v.ep->session->OnTick(v.now + 30'001), v.now);
    v.ExpectAbort("idle_timeout");
  }
  {
    Victim v;
    v.Hello();
    int64_t t = v.now;
    while (!v.ep->ended() && t < 5'000'000) {
      t += 20'000;
      v.ep->Receive(wire::EncodeMessageFrame(UnknownMsg{99}), t);  // keeps it from idling
      v.ep->Handle(v.ep->session->OnTick(t), t);
    }
    v.ExpectAbort("session_timeout");
    CHECK(t > 3'600'000);
  }
}

TEST_CASE("RepairSession: a local index error ends the session", "[repair_hostile]") {
  Victim v;
  v.Hello();
  v.node.data().fail_reads = Status::IoError("disk on fire");
  v.Feed(EntriesMsg{{FileEntry("x", "y")}});
  v.ExpectAbort("local_error");
}

}  // namespace
}  // namespace gossync::testutil
