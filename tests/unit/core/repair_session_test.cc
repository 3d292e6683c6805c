// RepairSession on its own, in gossync_core: two sessions exchanging message
// structs directly (no codec, no framing). The end-to-end tests through the
// wire are in tests/unit/wire/repair_session_test.cc.
#include "agent/core/repair_session.h"

#include <catch2/catch.hpp>
#include <deque>
#include <random>

#include "tests/testutil/mem_dataset.cc"  // NOLINT(bugprone-suspicious-include): see mem_dataset.h
#include "tests/unit/core/seed.h"

namespace gossync::core {
namespace {

using testutil::MemDriver;
using testutil::MemNode;

struct Side {
  Side(MemNode* n, RepairOptions o)
      : node(n), driver(&n->data()), session(std::move(o), &n->data()) {}
  MemNode* node;
  MemDriver driver;
  RepairSession session;
  std::deque<RepairMessage> to_peer;
  bool finished = false;
  std::string aborted;

  void Handle(RepairSession::Actions actions) {
    for (RepairAction& a : actions) {
      if (auto* s = std::get_if<repair::Send>(&a)) {
        to_peer.push_back(std::move(s->message));
      } else if (std::holds_alternative<repair::Finished>(a)) {
        finished = true;
      } else if (auto* ab = std::get_if<repair::Abort>(&a)) {
        aborted = ab->counter + ": " + ab->reason;
      } else {
        REQUIRE(driver.Execute(a));
      }
    }
    while (!driver.completions().empty() && !finished && aborted.empty()) {
      auto c = std::move(driver.completions().front());
      driver.completions().pop_front();
      Handle(c(session, 0));
    }
  }
};

RepairOptions Options(const MemNode& self, const MemNode& peer, bool initiator) {
  RepairOptions o;
  o.initiator = initiator;
  o.local_name = self.name();
  o.peer_name = peer.name();
  o.block_size = 256;
  return o;
}

// Runs a session between a (initiator) and b; true if both finished.
bool Sync(MemNode& a, MemNode& b) {
  Side x(&a, Options(a, b, true)), y(&b, Options(b, a, false));
  x.Handle(x.session.Start(0));
  y.Handle(y.session.Start(0));
  for (int steps = 0; steps < 100000; ++steps) {
    if (!x.to_peer.empty()) {
      RepairMessage m = std::move(x.to_peer.front());
      x.to_peer.pop_front();
      if (!y.finished && y.aborted.empty()) y.Handle(y.session.OnMessage(steps, std::move(m)));
    } else if (!y.to_peer.empty()) {
      RepairMessage m = std::move(y.to_peer.front());
      y.to_peer.pop_front();
      if (!x.finished && x.aborted.empty()) x.Handle(x.session.OnMessage(steps, std::move(m)));
    } else {
      break;
    }
  }
  if (x.finished && !y.finished) y.Handle(y.session.OnPeerClosed(0));
  INFO("initiator: " << x.aborted << " responder: " << y.aborted);
  return x.finished && y.finished;
}

TEST_CASE("RepairSession: the initiator opens with HELLO and NODES(1), the responder with HELLO",
          "[repair_session_core]") {
  MemNode a("alpha", 1), b("beta", 2);
  a.WriteFile("x", "1");
  RepairSession init(Options(a, b, true), &a.data());
  auto acts = init.Start(0);
  REQUIRE(acts.size() == 2);
  const auto& hello = std::get<HelloMsg>(std::get<repair::Send>(acts[0]).message);
  CHECK(hello.name == "alpha");
  CHECK(hello.root == a.data().Root());
  CHECK(hello.entries == 1);
  CHECK(std::get<NodesMsg>(std::get<repair::Send>(acts[1]).message).level == 1);
  RepairSession resp(Options(b, a, false), &b.data());
  CHECK(resp.Start(0).size() == 1);
}

TEST_CASE("RepairSession: sessions exchanging structs converge, with no codec in between",
          "[repair_session_core][property]") {
  GOSSYNC_SEEDED_RNG(0xc02e);
  for (int round = 0; round < 50; ++round) {
    MemNode o("origin", 9, 2), a("alpha", 1, 2), b("beta", 2, 2);
    for (int i = 0; i < 40; ++i)
      o.WriteFile("f" + std::to_string(i), std::string(rng() % 1000, 'o'));
    a.CopyFrom(o);
    b.CopyFrom(o);
    for (int i = 0; i < 20; ++i) {
      MemNode& n = rng() % 2 ? a : b;
      const std::string p = "f" + std::to_string(rng() % 50);
      const Entry* e = n.data().Find(p);
      if (e && e->live() && rng() % 3 == 0) {
        n.Remove(p);
      } else {
        n.WriteFile(p, std::string(rng() % 1000, static_cast<char>('a' + rng() % 26)));
      }
    }
    REQUIRE(Sync(a, b));
    REQUIRE(a.data().Root() == b.data().Root());
    REQUIRE(a.data().contents() == b.data().contents());
  }
}

}  // namespace
}  // namespace gossync::core
