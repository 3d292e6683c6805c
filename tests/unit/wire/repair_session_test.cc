// RepairSession end to end: two sessions back to back through the real codec
// and framing (tests/testutil/repair_harness.h), over in-memory datasets.
#include "agent/core/repair_session.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "agent/core/conflict.h"
#include "agent/wire/repair_codec.h"
#include "tests/testutil/repair_harness.h"
#include "tests/unit/core/seed.h"

namespace gossync::testutil {
namespace {

using core::Entry;
using core::EntryKind;
using core::RepairMessageType;

constexpr size_t T(RepairMessageType t) { return static_cast<size_t>(t); }

std::string Content(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

std::string Describe(const Entry* e) {
  if (e == nullptr) return "absent";
  std::string s = std::string(e->deleted ? "tombstone " : "") + core::KindName(e->kind) + " " +
                  e->vv.ToString() + " hash " + core::ToHex(e->hash).substr(0, 8) + " mode " +
                  std::to_string(e->mode) + " hlc " + std::to_string(e->hlc & 0xffffff) + " " +
                  e->origin;
  return s;
}

// The paths where the two datasets differ, both versions each.
std::string Differences(const MemDataset& a, const MemDataset& b) {
  std::string out;
  std::set<std::string> paths;
  for (const auto& [p, e] : a.entries()) paths.insert(p);
  for (const auto& [p, e] : b.entries()) paths.insert(p);
  for (const std::string& p : paths) {
    const Entry* x = a.Find(p);
    const Entry* y = b.Find(p);
    if (x && y && *x == *y) continue;
    out += "\n  " + p + ": " + Describe(x) + " | " + Describe(y);
  }
  return out;
}

void RequireConverged(MemNode& a, MemNode& b) {
  INFO("differences:" << Differences(a.data(), b.data()));
  REQUIRE(a.data().Root() == b.data().Root());
  REQUIRE(a.data().entries() == b.data().entries());
  REQUIRE(a.data().contents() == b.data().contents());
}

void RequireFinished(Link& link) {
  INFO("a aborted: " << (link.a().aborted ? link.a().aborted->reason : "-"));
  INFO("b aborted: " << (link.b().aborted ? link.b().aborted->reason : "-"));
  REQUIRE_FALSE(link.stalled());
  REQUIRE(link.a().finished);
  REQUIRE(link.b().finished);
}

uint64_t Frames(const Endpoint& e) { return e.sent.frames; }
uint64_t Sent(const Endpoint& e, RepairMessageType t) { return e.sent.by_type[T(t)]; }

// ---- Basics ----

TEST_CASE("RepairSession: identical datasets exchange HELLO and FIN/FIN_ACK, nothing else",
          "[repair_session]") {
  MemNode o("origin", 9), a("alpha", 1), b("beta", 2);
  for (int i = 0; i < 50; ++i) o.WriteFile("f" + std::to_string(i), std::to_string(i));
  a.CopyFrom(o);
  b.CopyFrom(o);
  Link link(a, b);
  link.Run();
  RequireFinished(link);
  CHECK(Frames(link.a()) == 2);
  CHECK(Sent(link.a(), RepairMessageType::kHello) == 1);
  CHECK(Sent(link.a(), RepairMessageType::kFin) == 1);
  CHECK(Frames(link.b()) == 2);
  CHECK(Sent(link.b(), RepairMessageType::kHello) == 1);
  CHECK(Sent(link.b(), RepairMessageType::kFinAck) == 1);
  CHECK(link.a().driver.counters().local_actions == 0);
  CHECK(link.b().driver.counters().local_actions == 0);
  CHECK(link.a().finished->stats.descent_levels == 0);

  SECTION("without gossip's root the opening NODES finds nothing to descend into") {
    Link again(a, b, LinkOptions{.root_hint = false});
    again.Run();
    RequireFinished(again);
    CHECK(Sent(again.a(), RepairMessageType::kNodes) == 1);
    CHECK(Sent(again.b(), RepairMessageType::kNodes) == 0);
    CHECK(Frames(again.b()) == 2);
  }
}

TEST_CASE("RepairSession: two empty datasets finish at once", "[repair_session]") {
  MemNode a("alpha", 1), b("beta", 2);
  Link link(a, b, LinkOptions{.root_hint = false});
  link.Run();
  RequireFinished(link);
  CHECK(Frames(link.a()) == 2);
}

// Builds two nodes holding the same `n` files, then gives `a` `changes`
// newer versions. Returns the link's figures.
struct Figures {
  int flights = 0;
  int first_entries_flight = 0;
  uint64_t overhead = 0;
  uint64_t content = 0;
};

Figures MeasureDifferences(const MemNode& origin, int changes, bool initiator_newer, uint64_t seed,
                           size_t window = core::kMaxInFlightBlocks) {
  MemNode a("alpha", 1), b("beta", 2);
  a.CopyFrom(origin);
  b.CopyFrom(origin);
  std::mt19937_64 rng(seed);
  MemNode& changer = initiator_newer ? a : b;
  std::set<size_t> picked;
  while (picked.size() < static_cast<size_t>(changes))
    picked.insert(rng() % origin.data().entries().size());
  for (size_t i : picked) {
    changer.WriteFile("data/file-" + std::to_string(i) + ".csv", "changed " + std::to_string(i));
  }
  LinkOptions opts;
  opts.max_in_flight_blocks = window;
  opts.max_active_pulls = window;
  Link link(a, b, opts);
  link.Run();
  RequireFinished(link);
  RequireConverged(a, b);
  Figures f;
  f.flights = link.flights();
  f.first_entries_flight = link.first_entries_flight();
  f.overhead = link.overhead_bytes();
  f.content = link.a().sent.content_bytes + link.b().sent.content_bytes;
  const auto& sa = link.a().finished->stats;
  const auto& sb = link.b().finished->stats;
  std::printf(
      "  %6d difference(s), %s newer, window %zu: learnt in %d flights (%.1f round trips), done in "
      "%d flights;"
      " %llu bytes of frames besides %llu of content; levels %d; NODES %llu+%llu, LEAVES "
      "%llu+%llu, ENTRIES %llu+%llu, WANT %llu+%llu\n",
      changes, initiator_newer ? "initiator" : "responder", window, f.first_entries_flight,
      f.first_entries_flight / 2.0, f.flights, static_cast<unsigned long long>(f.overhead),
      static_cast<unsigned long long>(f.content), std::max(sa.descent_levels, sb.descent_levels),
      static_cast<unsigned long long>(Sent(link.a(), RepairMessageType::kNodes)),
      static_cast<unsigned long long>(Sent(link.b(), RepairMessageType::kNodes)),
      static_cast<unsigned long long>(Sent(link.a(), RepairMessageType::kLeaves)),
      static_cast<unsigned long long>(Sent(link.b(), RepairMessageType::kLeaves)),
      static_cast<unsigned long long>(Sent(link.a(), RepairMessageType::kEntries)),
      static_cast<unsigned long long>(Sent(link.b(), RepairMessageType::kEntries)),
      static_cast<unsigned long long>(Sent(link.a(), RepairMessageType::kWant)),
      static_cast<unsigned long long>(Sent(link.b(), RepairMessageType::kWant)));
  return f;
}

TEST_CASE(
    "RepairSession: one difference among 100,000 entries is found in 3 round trips and "
    "under 1.5 KB",
    "[repair_session][measure][slow]") {
  MemNode origin("origin", 9);
  for (int i = 0; i < 100'000; ++i) {
    origin.WriteFile("data/file-" + std::to_string(i) + ".csv", "row " + std::to_string(i));
  }
  std::printf("RepairSession over 100,000 entries, depth 4:\n");
  for (bool initiator_newer : {true, false}) {
    Figures f = MeasureDifferences(origin, 1, initiator_newer, 1);
    // flight 1 NODES(1), 2 NODES(2), 3 NODES(3), 4 NODES(4), 5 LEAVES, 6 ENTRIES
    CHECK(f.first_entries_flight <= 6);
    CHECK(f.overhead < 1500);
  }
}

// The figures of docs/performance.md for more differences (hidden: a minute
// under the sanitizers): ./build/tests/unit_wire "[measure]"
TEST_CASE("RepairSession: 10, 100 and 10,000 differences among 100,000 entries (figures)",
          "[.][repair_session][measure]") {
  MemNode origin("origin", 9);
  for (int i = 0; i < 100'000; ++i) {
    origin.WriteFile("data/file-" + std::to_string(i) + ".csv", "row " + std::to_string(i));
  }
  std::printf("RepairSession over 100,000 entries, depth 4:\n");
  for (int n : {10, 100, 10'000}) MeasureDifferences(origin, n, true, n);
  // The old window of 64 blocks starved on small files: a round trip per 64.
  MeasureDifferences(origin, 10'000, true, 10'000, 64);
}

// Issue 7's figure at the size it names (hidden: ~1 minute and ~1 GB):
// ./build/tests/unit_wire "[million]"
TEST_CASE("RepairSession: differences among 1,000,000 entries (figures)",
          "[.][repair_session][measure][million]") {
  MemNode origin("origin", 9);
  for (int i = 0; i < 1'000'000; ++i) {
    origin.WriteFile("data/file-" + std::to_string(i) + ".csv", "row " + std::to_string(i));
  }
  std::printf("RepairSession over 1,000,000 entries, depth 4:\n");
  for (bool initiator_newer : {true, false}) MeasureDifferences(origin, 1, initiator_newer, 1);
  for (int n : {10, 100, 10'000}) MeasureDifferences(origin, n, true, n);
}

// ---- Initial sync ----

void Populate(MemNode& n, std::mt19937_64& rng, int count) {
  for (int i = 0; i < count; ++i) {
    const std::string p = "p" + std::to_string(i % 7) + "/e" + std::to_string(i);
    switch (rng() % 5) {
      case 0:
        n.Mkdir(p);
        break;
      case 1:
        n.Symlink(p, "../t" + std::to_string(i));
        break;
      case 2:
        n.WriteFile(p, Content(rng, rng() % 300));
        n.Remove(p);
        break;
      default:
        n.WriteFile(p, Content(rng, rng() % 10000), rng() % 2 ? 0644 : 0600);
    }
  }
}

TEST_CASE("RepairSession: an empty side takes everything without a descent", "[repair_session]") {
  GOSSYNC_SEEDED_RNG(0xe3);
  for (bool empty_initiates : {false, true}) {
    for (bool hint : {true, false}) {
      INFO("empty side initiates: " << empty_initiates << ", root hint: " << hint);
      MemNode full("alpha", 1), empty("beta", 2);
      Populate(full, rng, 2000);
      Link link = empty_initiates ? Link(empty, full, LinkOptions{.root_hint = hint})
                                  : Link(full, empty, LinkOptions{.root_hint = hint});
      link.Run();
      RequireFinished(link);
      RequireConverged(full, empty);
      CHECK(Sent(link.a(), RepairMessageType::kLeaves) + Sent(link.b(), RepairMessageType::kLeaves) == 0);
      // Beyond at most the initiator's opening NODES(1), no descent.
      CHECK(Sent(link.a(), RepairMessageType::kNodes) <= (hint ? 0u : 1u));
      CHECK(Sent(link.b(), RepairMessageType::kNodes) == 0);
      Endpoint& taker = empty_initiates ? link.a() : link.b();
      CHECK(taker.finished->stats.entries_applied == full.data().entries().size());
    }
  }
}

// ---- Content ----

TEST_CASE("RepairSession: of a changed 4 MiB file only the changed block moves",
          "[repair_session]") {
  GOSSYNC_SEEDED_RNG(0xb10c);
  MemNode a("alpha", 1), b("beta", 2);
  std::string v1 = Content(rng, 4 << 20);
  a.WriteFile("big.bin", v1);
  b.CopyFrom(a);
  std::string v2 = v1;
  v2.replace(500 * 4096 + 17, 3, "XYZ");
  a.WriteFile("big.bin", v2);
  Link link(a, b, LinkOptions{.block_size = 4096});
  link.Run();
  RequireFinished(link);
  RequireConverged(a, b);
  const core::SessionStats& s = link.b().finished->stats;
  CHECK(s.blocks_received == 1);
  CHECK(s.blocks_reused == 1023);
  CHECK(link.a().sent.content_bytes == 4096);
  CHECK(Sent(link.b(), RepairMessageType::kBlockListReq) == 1);
  CHECK(Sent(link.b(), RepairMessageType::kBlockReq) == 1);
  std::printf("4 MiB file, one 4 KiB block changed: %llu bytes of content, %llu of frames\n",
              static_cast<unsigned long long>(link.a().sent.content_bytes),
              static_cast<unsigned long long>(link.overhead_bytes()));
}

TEST_CASE("RepairSession: an interrupted transfer resumes with the blocks it lacks",
          "[repair_session]") {
  GOSSYNC_SEEDED_RNG(0x2e5);
  MemNode a("alpha", 1), b("beta", 2);
  const std::string big = Content(rng, 4 << 20);
  a.WriteFile("big.bin", big);
  a.WriteFile("small.txt", "small");
  // b initiates; cut after it received half of the 1,024 blocks.
  uint64_t blocks = 0;
  {
    Link first(b, a, LinkOptions{.block_size = 4096});
    first.a().on_frame = [&](const core::RepairMessage& m) {
      auto* block = std::get_if<core::BlockMsg>(&m);
      return block && block->data.size() == 4096 && ++blocks > 512;  // big.bin's
    };
    first.Run();
    REQUIRE(first.cut());
    REQUIRE(first.a().aborted);
    CHECK(first.a().aborted->counter == "disconnected");
    CHECK(b.data().Find("big.bin") == nullptr);
    CHECK(b.data().temp_files.size() == 1);
  }
  Link second(b, a, LinkOptions{.block_size = 4096});
  second.Run();
  RequireFinished(second);
  RequireConverged(a, b);
  const core::SessionStats& s = second.a().finished->stats;
  CHECK(s.blocks_reused == 512);
  CHECK(s.blocks_received == 512);
  CHECK(b.data().temp_files.empty());
}

TEST_CASE("RepairSession: a rename moves no content", "[repair_session]") {
  MemNode a("alpha", 1), b("beta", 2);
  a.WriteFile("old/name.bin", std::string(100000, 'r'));
  b.CopyFrom(a);
  a.Remove("old/name.bin");
  a.WriteFile("new/name.bin", std::string(100000, 'r'));
  Link link(a, b);
  link.Run();
  RequireFinished(link);
  RequireConverged(a, b);
  CHECK(link.a().sent.content_bytes == 0);
}

// ---- Conflicts ----

TEST_CASE("RepairSession: concurrent edits leave the winner and a conflict copy on both sides",
          "[repair_session]") {
  MemNode o("origin", 9), a("alpha", 1), b("beta", 2, core::kDefaultTreeDepth, 1'700'000'100'000);
  o.WriteFile("doc/report.csv", "base");
  o.WriteFile("doc/gone.txt", "base");
  o.WriteFile("doc/kind", "a file");
  a.CopyFrom(o);
  b.CopyFrom(o);
  a.WriteFile("doc/report.csv", std::string(10000, 'a'));  // loses: b's clock is later
  b.WriteFile("doc/report.csv", std::string(10000, 'b'));
  a.Remove("doc/gone.txt");  // a delete against an edit: the edit lives
  b.WriteFile("doc/gone.txt", "edited");
  a.WriteFile("doc/kind", "edited file");  // a file against a directory: the directory
  b.Remove("doc/kind");
  b.Mkdir("doc/kind");
  const Entry lost = *a.data().Find("doc/report.csv");
  const Entry lost_file = *a.data().Find("doc/kind");
  for (bool a_initiates : {true, false}) {
    INFO("a initiates: " << a_initiates);
    MemNode a2("alpha", 1), b2("beta", 2);
    a2.CopyFrom(a);
    b2.CopyFrom(b);
    Link link = a_initiates ? Link(a2, b2) : Link(b2, a2);
    link.Run();
    RequireFinished(link);
    RequireConverged(a2, b2);
    const MemDataset& d = a2.data();
    CHECK(*d.Content("doc/report.csv") == std::string(10000, 'b'));
    const std::string copy = core::ConflictCopyPath("doc/report.csv", lost.hlc, "alpha");
    REQUIRE(d.Content(copy));
    CHECK(*d.Content(copy) == std::string(10000, 'a'));
    CHECK(*d.Content("doc/gone.txt") == "edited");
    CHECK(d.Find("doc/kind")->kind == EntryKind::kDirectory);
    const std::string kind_copy = core::ConflictCopyPath("doc/kind", lost_file.hlc, "alpha");
    REQUIRE(d.Content(kind_copy));
    CHECK(*d.Content(kind_copy) == "edited file");
    CHECK(link.a().finished->stats.conflicts == 3);
    CHECK(link.b().finished->stats.conflicts == 3);
  }
}

TEST_CASE("RepairSession: a node that loses twice within a second keeps both conflict copies",
          "[repair_session]") {
  // The copy's name has the loser's HLC to the second; a node whose clock
  // runs behind the cluster's HLC stamps many changes with the same second.
  MemNode a("alpha", 1), b("beta", 2, core::kDefaultTreeDepth, 1'700'000'000'500);
  a.WriteFile("f.txt", "base");
  b.CopyFrom(a);
  std::vector<Entry> lost;
  for (int round = 0; round < 3; ++round) {
    a.WriteFile("f.txt", "alpha " + std::to_string(round));  // loses: beta's clock is later
    b.WriteFile("f.txt", "beta " + std::to_string(round));
    lost.push_back(*a.data().Find("f.txt"));
    Link link(a, b);
    link.Run();
    RequireFinished(link);
    RequireConverged(a, b);
    CHECK(link.a().finished->stats.skipped == 0);
  }
  const std::string first = core::ConflictCopyPath("f.txt", lost[0].hlc, "alpha");
  REQUIRE(core::ConflictCopyPath("f.txt", lost[2].hlc, "alpha") == first);  // one second
  const MemDataset& d = a.data();
  CHECK(*d.Content("f.txt") == "beta 2");
  std::multiset<std::string> copies;
  for (const auto& [p, e] : d.entries()) {
    if (core::IsConflictCopy(p) && e.live()) copies.insert(*d.Content(p));
  }
  CHECK(copies == std::multiset<std::string>{"alpha 0", "alpha 1", "alpha 2"});
  CHECK(d.Content(core::ConflictCopyPath("f.txt", lost[1].hlc, "alpha", 1)));
}

TEST_CASE("RepairSession: a delete that saw the content wins after the content won a conflict",
          "[repair_session][dot]") {
  // The chaos test's pattern: n3 writes W, n1 gets it, n3 deletes it (T).
  // n2 concurrently writes X, earlier. n1 meets n2 first: W beats X, X
  // becomes the copy, and W's merged history is concurrent with T. Then T
  // must still win (it saw W), on every node and in any order of sessions;
  // without dots W came back from the dead.
  for (int order = 0; order < 3; ++order) {
    INFO("order " << order);
    MemNode n1("n1", 1), n2("n2", 2), n3("n3", 3, core::kDefaultTreeDepth, 1'700'000'100'000);
    n3.WriteFile("f.txt", "W");
    n1.CopyFrom(n3);
    n3.Remove("f.txt");
    n2.WriteFile("f.txt", "X");
    const Entry x = *n2.data().Find("f.txt");
    auto sync = [](MemNode& a, MemNode& b) {
      Link link(a, b);
      link.Run();
      RequireFinished(link);
      RequireConverged(a, b);
    };
    if (order == 0) {
      sync(n1, n2);
      REQUIRE(*n1.data().Content("f.txt") == "W");  // W won the conflict with X
      sync(n1, n3);
    } else if (order == 1) {
      sync(n3, n1);  // T dominates W
      sync(n2, n3);
    } else {
      sync(n2, n3);  // T did not see X: X lives, with T's history
      REQUIRE(*n3.data().Content("f.txt") == "X");
      sync(n1, n2);
    }
    sync(n1, n2);
    sync(n2, n3);
    sync(n1, n3);
    for (MemNode* n : {&n1, &n2, &n3}) {
      const MemDataset& d = n->data();
      INFO(n->name());
      // W is gone for good; X survives, live or as its copy.
      const std::string copy = core::ConflictCopyPath("f.txt", x.hlc, "n2");
      const bool x_live = d.Content("f.txt") && *d.Content("f.txt") == "X";
      const bool x_copy = d.Content(copy) && *d.Content(copy) == "X";
      CHECK((x_live || x_copy));
      for (const auto& [p, e] : d.entries()) {
        if (e.live() && e.kind == EntryKind::kFile) CHECK(*d.Content(p) != "W");
      }
    }
  }
}

TEST_CASE("RepairSession: among three nodes nothing overwritten or deleted comes back",
          "[repair_session][property][dot]") {
  // The chaos checker's model (tests/chaos/chaos/checker.py) over random
  // changes and sessions between random pairs of three nodes: contents are
  // unique per write; a write is superseded by a change made on a node
  // that held it. Finally every path holds no superseded content, and every
  // write not superseded is live or a conflict copy.
  GOSSYNC_SEEDED_RNG(0xd07);
  int came_back_checks = 0, deletes_kept = 0;
  for (int round = 0; round < 150; ++round) {
    INFO("round " << round);
    std::vector<MemNode> n;
    for (int i = 0; i < 3; ++i) {
      n.emplace_back("n" + std::to_string(i + 1), i + 1, 1, 1'700'000'000'000 + rng() % 50);
    }
    const std::vector<std::string> pool = {"a.txt", "b.txt", "d/c.txt"};
    std::map<std::string, std::set<std::string>> written, superseded;
    int seq = 0;
    std::string story;  // printed when a check fails
    auto show = [&](const std::string& p) {
      std::string out;
      for (MemNode& m : n) {
        const Entry* e = m.data().Find(p);
        out += " " + m.name() + "=" +
               (e ? (e->live() ? *m.data().Content(p) : std::string("deleted")) + " " +
                        e->vv.ToString() + " dot " + std::to_string(e->dot.node) + ":" +
                        std::to_string(e->dot.counter)
                  : std::string("absent")) +
               ";";
      }
      return out;
    };
    for (int step = 0; step < 40; ++step) {
      if (rng() % 10 < 3) {
        const size_t x = rng() % 3, y = (x + 1 + rng() % 2) % 3;
        Link link(n[x], n[y]);
        link.Run();
        RequireFinished(link);
        story += "\n  sync " + n[x].name() + " " + n[y].name() + ":";
        for (const std::string& p : pool) story += "\n    " + p + show(p);
        for (const auto& [p, e] : n[x].data().entries()) {
          if (core::IsConflictCopy(p)) story += "\n    copy " + p + show(p);
        }
        continue;
      }
      MemNode& node = n[rng() % 3];
      // Changes a second or more apart. Conflict copies are named by the
      // loser's second: when two nodes each make a copy of a different loser
      // of the same node and second under the same name, neither knowing the
      // other's, the copies meet at that name with the losers' VVs, and if
      // those are ordered the older copy is overwritten: a lost write. (A
      // known weakness of copy naming, not of dots; without this line,
      // GOSSYNC_TEST_SEED=3335 shows it in round 41.)
      node.AdvanceClock(1000 + rng() % 1000);
      const std::string& p = pool[rng() % pool.size()];
      const Entry* e = node.data().Find(p);
      const bool live = e && e->live() && e->kind == EntryKind::kFile;
      if (live) superseded[p].insert(*node.data().Content(p));
      if (live && rng() % 3 == 0) {
        node.Remove(p);
        story += "\n  " + node.name() + " deletes " + p;
      } else {
        const std::string c = node.name() + " write " + std::to_string(++seq);
        node.WriteFile(p, c);
        written[p].insert(c);
        story += "\n  " + c + " at " + p;
      }
      story += show(p);
    }
    INFO("story:" << story);
    for (int pass = 0; pass < 4; ++pass) {
      for (auto [x, y] : {std::pair{0, 1}, {1, 2}, {0, 2}}) {
        Link link(n[x], n[y]);
        link.Run();
        RequireFinished(link);
      }
    }
    RequireConverged(n[0], n[1]);
    RequireConverged(n[1], n[2]);
    const MemDataset& d = n[0].data();
    std::map<std::string, std::set<std::string>> copies;
    for (const auto& [p, e] : d.entries()) {
      if (e.live() && e.kind == EntryKind::kFile && core::IsConflictCopy(p)) {
        std::string orig = p;  // a copy of a copy counts too (two nodes named copies alike)
        while (core::IsConflictCopy(orig)) orig = core::ConflictOriginalPath(orig);
        copies[orig].insert(*d.Content(p));
      }
    }
    for (const std::string& p : pool) {
      INFO("path " << p);
      const Entry* e = d.Find(p);
      if (e && e->live()) {
        const std::string live = *d.Content(p);
        INFO("live " << live);
        CHECK(superseded[p].count(live) == 0);  // nothing comes back
        ++came_back_checks;
      } else if (e) {
        ++deletes_kept;
      }
      for (const std::string& c : written[p]) {
        if (superseded[p].count(c)) continue;
        INFO("write " << c);
        CHECK(((e && e->live() && *d.Content(p) == c) || copies[p].count(c)));  // not lost
      }
    }
  }
  CHECK(came_back_checks > 100);
  CHECK(deletes_kept > 20);
}

// ---- The property test ----

// Random changes on one side, over paths both sides know.
void Mutate(MemNode& n, std::mt19937_64& rng, const std::vector<std::string>& pool, int ops) {
  for (int i = 0; i < ops; ++i) {
    const std::string& p = pool[rng() % pool.size()];
    const Entry* e = n.data().Find(p);
    const bool live = e && e->live();
    switch (rng() % 8) {
      case 0:
        if (live) n.Remove(p);
        break;
      case 1:
        if (live) n.Chmod(p, rng() % 2 ? 0600 : 0755);
        break;
      case 2:
        n.Symlink(p, "target-" + std::to_string(rng() % 5));
        break;
      case 3:
        n.Mkdir(p, rng() % 2 ? 0755 : 0700);
        break;
      case 4:
        if (live && e->kind == EntryKind::kFile && e->size > 0) {
          std::string c = *n.data().Content(p);  // edit one byte: one block changes
          c[rng() % c.size()] = static_cast<char>('A' + rng() % 26);
          n.WriteFile(p, c, e->mode);
          break;
        }
        [[fallthrough]];
      default:
        n.WriteFile(p, Content(rng, rng() % 400));
    }
  }
}

using Snapshot = std::map<std::string, Entry, std::less<>>;

// Checks that nothing written was lost and nothing deleted came back.
void CheckNoLoss(const Snapshot& side, const Snapshot& other, const MemDataset& final) {
  for (const auto& [path, e] : side) {
    INFO("path " << path << " " << e.vv.ToString());
    auto o = other.find(path);
    const bool other_newer =
        o != other.end() && o->second.vv.Compare(e.vv) == core::VvOrder::kGreater;
    if (other_newer) continue;  // superseded
    const Entry* now = final.Find(path);
    REQUIRE(now != nullptr);
    const bool concurrent =
        o != other.end() && o->second.vv.Compare(e.vv) == core::VvOrder::kConcurrent;
    if (e.deleted) {
      // Stays deleted unless the other side changed it concurrently and a
      // live version won.
      if (!concurrent || o->second.deleted) CHECK(now->deleted);
      continue;
    }
    if (e.kind == EntryKind::kDirectory) {
      CHECK(now->live());
      continue;
    }
    auto same = [&](const Entry* x) {
      return x && x->live() && x->kind == e.kind && x->hash == e.hash && x->target == e.target;
    };
    const Entry* copy = final.Find(core::ConflictCopyPath(path, e.hlc, e.origin));
    CHECK((same(now) || same(copy)));
  }
}

// Two nodes that diverged from a common ancestor by random changes,
// concurrent ones included (both sides draw from the same paths).
struct Diverged {
  MemNode a, b;
  Snapshot before_a, before_b;
};

Diverged Diverge(std::mt19937_64& rng) {
  const int depth = 1 + static_cast<int>(rng() % 3);
  MemNode o("origin", 9, depth);
  std::vector<std::string> pool;
  for (int i = 0; i < 60; ++i)
    pool.push_back("d" + std::to_string(i % 4) + "/n" + std::to_string(i));
  Mutate(o, rng, pool, 40);
  Diverged d{MemNode("alpha", 1, depth, 1'700'000'000'000 + rng() % 100),
             MemNode("beta", 2, depth, 1'700'000'000'000 + rng() % 100),
             {},
             {}};
  d.a.CopyFrom(o);
  d.b.CopyFrom(o);
  Mutate(d.a, rng, pool, static_cast<int>(rng() % 30));
  Mutate(d.b, rng, pool, static_cast<int>(rng() % 30));
  d.before_a = d.a.data().entries();
  d.before_b = d.b.data().entries();
  return d;
}

// Random but valid session settings: small blocks, narrow windows.
LinkOptions RandomOptions(std::mt19937_64& rng) {
  LinkOptions opts;
  opts.block_size = 64;
  opts.root_hint = rng() % 4 != 0;
  const size_t windows[] = {1, 3, 64};
  opts.max_in_flight_blocks = windows[rng() % 3];
  opts.max_active_pulls = windows[rng() % 3];
  opts.max_active_large_pulls = 1 + rng() % 4;
  return opts;
}

void CheckSettled(Diverged& d, const LinkOptions& opts) {
  RequireConverged(d.a, d.b);
  CheckNoLoss(d.before_a, d.before_b, d.a.data());
  CheckNoLoss(d.before_b, d.before_a, d.a.data());
  // A further session finds nothing to do.
  Link again(d.a, d.b, opts);
  again.Run();
  RequireFinished(again);
  CHECK(again.a().driver.counters().local_actions == 0);
  CHECK(again.b().driver.counters().local_actions == 0);
  CHECK(Frames(again.a()) + Frames(again.b()) <= 5);
}

TEST_CASE("RepairSession: random divergent datasets converge in one session, losing nothing",
          "[repair_session][property]") {
  GOSSYNC_SEEDED_RNG(0x5eed);
  std::printf("repair property test seed %llu\n", static_cast<unsigned long long>(seed));
  uint64_t conflicts = 0, pulled = 0, applied = 0;
  for (int round = 0; round < 200; ++round) {
    INFO("round " << round);
    Diverged d = Diverge(rng);
    const bool a_initiates = rng() % 2;
    const LinkOptions opts = RandomOptions(rng);
    Link link = a_initiates ? Link(d.a, d.b, opts) : Link(d.b, d.a, opts);
    link.Run();
    RequireFinished(link);
    CheckSettled(d, opts);
    conflicts += link.a().finished->stats.conflicts;
    pulled += link.a().finished->stats.files_pulled + link.b().finished->stats.files_pulled;
    applied += link.a().finished->stats.entries_applied + link.b().finished->stats.entries_applied;
  }
  std::printf("  200 rounds: %llu conflicts, %llu files pulled, %llu entries applied\n",
              static_cast<unsigned long long>(conflicts), static_cast<unsigned long long>(pulled),
              static_cast<unsigned long long>(applied));
  CHECK(conflicts > 0);
}

TEST_CASE("RepairSession: a session cut anywhere leaves a state the next one completes",
          "[repair_session][property]") {
  GOSSYNC_SEEDED_RNG(0xc07);
  std::printf("repair cut property test seed %llu\n", static_cast<unsigned long long>(seed));
  int cut = 0;
  for (int round = 0; round < 200; ++round) {
    INFO("round " << round);
    Diverged d = Diverge(rng);
    const LinkOptions opts = RandomOptions(rng);
    for (int cuts = static_cast<int>(1 + rng() % 3); cuts > 0; --cuts) {
      Link first = rng() % 2 ? Link(d.a, d.b, opts) : Link(d.b, d.a, opts);
      const int at = 1 + static_cast<int>(rng() % 40);
      int frames = 0;
      auto counter = [&](const core::RepairMessage&) { return ++frames >= at; };
      first.a().on_frame = counter;
      first.b().on_frame = counter;
      first.Run();
      REQUIRE_FALSE(first.stalled());
      cut += first.cut();
    }
    Link second(d.b, d.a, opts);
    second.Run();
    RequireFinished(second);
    INFO("second session: skipped " << second.a().finished->stats.skipped << "+"
                                    << second.b().finished->stats.skipped << ", deferred "
                                    << second.a().finished->stats.deferred << "+"
                                    << second.b().finished->stats.deferred);
    CheckSettled(d, opts);
  }
  std::printf("  200 rounds, %d sessions cut before the end\n", cut);
  CHECK(cut > 200);
}

TEST_CASE("RepairSession: a dry run predicts what a real session changes",
          "[repair_session][property]") {
  GOSSYNC_SEEDED_RNG(0xd21);
  for (int round = 0; round < 100; ++round) {
    INFO("round " << round);
    Diverged d = Diverge(rng);
    LinkOptions opts = RandomOptions(rng);
    opts.dry_run = true;
    const core::Hash256 root_a = d.a.data().Root(), root_b = d.b.data().Root();
    Link dry(d.a, d.b, opts);
    dry.Run();
    RequireFinished(dry);
    REQUIRE(d.a.data().Root() == root_a);
    REQUIRE(d.b.data().Root() == root_b);
    const core::DiffReport da = dry.a().finished->stats.diff;
    const core::DiffReport db = dry.b().finished->stats.diff;

    opts.dry_run = false;
    Link real(d.a, d.b, opts);
    real.Run();
    RequireFinished(real);
    RequireConverged(d.a, d.b);
    auto paths = [](std::initializer_list<const std::vector<core::DiffItem>*> lists) {
      std::set<std::string> out;
      for (const auto* l : lists) {
        for (const auto& i : *l) out.insert(i.path);
      }
      return out;
    };
    // What changed on each side, conflict copies aside.
    auto changed = [](const Snapshot& before, const MemDataset& after) {
      std::set<std::string> out;
      for (const auto& [p, e] : after.entries()) {
        auto b = before.find(p);
        if ((b == before.end() || !(b->second == e)) && !core::IsConflictCopy(p)) out.insert(p);
      }
      return out;
    };
    // A side changes exactly the paths it would pull, or resolve as a
    // conflict or merge (a merge or a won conflict may leave ours as is,
    // give or take the history).
    const std::set<std::string> ca = changed(d.before_a, d.a.data());
    const std::set<std::string> cb = changed(d.before_b, d.b.data());
    const std::set<std::string> pa = paths({&da.pull}), pb = paths({&db.pull});
    const std::set<std::string> xa = paths({&da.pull, &da.conflict, &da.merge});
    const std::set<std::string> xb = paths({&db.pull, &db.conflict, &db.merge});
    for (const std::string& p : pa) CHECK(ca.count(p));
    for (const std::string& p : ca) CHECK(xa.count(p));
    for (const std::string& p : pb) CHECK(cb.count(p));
    for (const std::string& p : cb) CHECK(xb.count(p));
    // And the two sides agree on the directions.
    CHECK(paths({&da.push}) == pb);
    CHECK(paths({&db.push}) == pa);
    CHECK(paths({&da.conflict}) == paths({&db.conflict}));
  }
}

// ---- Dry run ----

TEST_CASE("RepairSession: a dry run moves nothing and lists each direction", "[repair_session]") {
  MemNode o("origin", 9), a("alpha", 1), b("beta", 2, core::kDefaultTreeDepth, 1'700'000'100'000);
  for (const char* p : {"a-newer", "b-newer", "both", "same", "a-deletes", "untouched"}) {
    o.WriteFile(p, "base");
  }
  a.CopyFrom(o);
  b.CopyFrom(o);
  a.WriteFile("a-only", "x");
  b.WriteFile("b-only", "y");
  a.WriteFile("a-newer", "a");
  b.WriteFile("b-newer", "b");
  a.WriteFile("both", "a");
  b.WriteFile("both", "b");
  a.Chmod("same", 0600);
  b.Chmod("same", 0600);
  a.Remove("a-deletes");
  const core::Hash256 root_a = a.data().Root(), root_b = b.data().Root();
  Link link(a, b, LinkOptions{.dry_run = true});
  link.Run();
  RequireFinished(link);
  CHECK(a.data().Root() == root_a);
  CHECK(b.data().Root() == root_b);
  CHECK(link.a().driver.counters().local_actions == 0);
  CHECK(link.b().driver.counters().local_actions == 0);
  CHECK(link.a().sent.content_bytes + link.b().sent.content_bytes == 0);
  CHECK(link.b().session->dry_run());

  auto paths = [](const std::vector<core::DiffItem>& items) {
    std::set<std::string> out;
    for (const auto& i : items) out.insert(i.path);
    return out;
  };
  using S = std::set<std::string>;
  const core::DiffReport& da = link.a().finished->stats.diff;
  CHECK(paths(da.pull) == S{"b-only", "b-newer"});
  CHECK(paths(da.push) == S{"a-only", "a-newer", "a-deletes"});
  CHECK(paths(da.conflict) == S{"both"});
  CHECK(paths(da.merge) == S{"same"});
  const core::DiffReport& db = link.b().finished->stats.diff;
  CHECK(paths(db.pull) == S{"a-only", "a-newer", "a-deletes"});
  CHECK(paths(db.push) == S{"b-only", "b-newer"});
  CHECK(paths(db.conflict) == S{"both"});
  CHECK(paths(db.merge) == S{"same"});
  for (const auto& item : da.conflict) {
    REQUIRE(item.local);
    REQUIRE(item.remote);
    CHECK(*a.data().Content(item.path) == "a");
    CHECK(item.remote->hash == core::Sha256(std::string_view("b")));
  }
}

}  // namespace
}  // namespace gossync::testutil
