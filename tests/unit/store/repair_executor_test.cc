// RepairExecutor end to end: two real replicas (SQLite, files in temp
// dirs), two RepairSessions back to back through the real codec and framing,
// each driven by RepairExecutor::Drive (tests/testutil/replica_pair.h).
#include "tests/testutil/replica_pair.cc"  // NOLINT(bugprone-suspicious-include)

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>

#include "agent/core/conflict.h"
#include "agent/core/path.h"
#include "agent/store/repair_executor.h"
#include "agent/store/scanner.h"
#include "tests/unit/core/seed.h"

namespace gossync::testutil {
namespace {

using core::Entry;
using core::EntryKind;
using core::MessageType;
namespace rep = core::repair;

std::string Bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

struct SyncResult {
  core::SessionStats a, b;
  store::ExecutorStats ea, eb;
  int flights = 0;
};

// One session, a initiating; both must finish.
SyncResult Sync(ReplicaNode& a, ReplicaNode& b, PairOptions o = {}) {
  SessionPair pair(a, b, o);
  SyncResult r;
  r.flights = pair.Run();
  INFO("a: " << (pair.a().aborted ? pair.a().aborted->counter + " " + pair.a().aborted->reason
                                  : std::string("ok")));
  INFO("b: " << (pair.b().aborted ? pair.b().aborted->counter + " " + pair.b().aborted->reason
                                  : std::string("ok")));
  REQUIRE(!pair.stalled());
  REQUIRE(pair.a().finished);
  REQUIRE(pair.b().finished);
  r.a = pair.a().finished->stats;
  r.b = pair.b().finished->stats;
  r.ea = pair.a().exec.stats();
  r.eb = pair.b().exec.stats();
  return r;
}

uint64_t Moved(const SyncResult& r) {
  return r.a.entries_applied + r.b.entries_applied + r.a.blocks_received + r.b.blocks_received +
         r.a.skipped + r.b.skipped;
}

std::string Describe(ReplicaNode& n, const std::string& path) {
  auto r = n.replica().Get(path);
  if (!r.ok()) return r.status().ToString();
  if (!r->has_value()) return "not indexed";
  const Entry& e = (*r)->entry;
  char mode[16];
  std::snprintf(mode, sizeof(mode), "%04o", e.mode);
  return std::string(e.deleted ? "tombstone " : "") + core::KindName(e.kind) + " " + mode + " " +
         e.vv.ToString() + " " + e.origin + " hash " + core::ToHex(e.hash).substr(0, 8);
}

// The index rows of the paths where two data dirs or indexes differ.
std::string IndexDiff(ReplicaNode& a, ReplicaNode& b) {
  std::string out;
  std::set<std::string> paths;
  for (ReplicaNode* n : {&a, &b}) {
    (void)n->replica().index().ForEach([&](const store::IndexRecord& r) {
      paths.insert(r.entry.path);
      return Status::Ok();
    });
  }
  for (const std::string& p : paths) {
    std::string x = Describe(a, p), y = Describe(b, p);
    if (x != y) out += "\n  " + p + ": " + x + " | " + y;
  }
  return out;
}

void RequireSame(ReplicaNode& a, ReplicaNode& b) {
  auto fa = Fingerprint(a.data_dir());
  auto fb = Fingerprint(b.data_dir());
  INFO("differences (" << a.name() << " | " << b.name() << "):" << FingerprintDiff(fa, fb));
  INFO("index differences:" << IndexDiff(a, b));
  REQUIRE(fa == fb);
  REQUIRE(a.replica().root() == b.replica().root());
  CHECK(a.TempFilesInDataDir().empty());
  CHECK(b.TempFilesInDataDir().empty());
  CHECK(a.TempFilesInTempArea().empty());
  CHECK(b.TempFilesInTempArea().empty());
}

// Every index row agrees with the disk the way the scanner sees it: a
// rescan finds nothing to record.
void RequireScanQuiet(ReplicaNode& n) {
  const core::Hash256 root = n.replica().root();
  store::Changes c = n.Scan();
  INFO(n.name() << ": the rescan versioned " << c.changed.size() << " paths, e.g. "
                << (c.changed.empty() ? std::string() : c.changed[0].entry.path));
  CHECK(c.changed.empty());
  CHECK(n.replica().root() == root);
}

// ---- Basic sync ----

TEST_CASE("RepairExecutor: an initial sync copies files, directories, symlinks and modes",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  GOSSYNC_SEEDED_RNG(11);
  a.Mkdir("docs");
  a.Mkdir("docs/deep", 0700);
  a.Mkdir("empty", 0750);
  a.Write("top.txt", "hello");
  a.Write("empty-file", "");
  a.Write("docs/one-block", Bytes(rng, 4096), 0600);
  a.Write("docs/deep/multi", Bytes(rng, 5 * 4096 + 17), 0755);
  a.Write("docs/deep/exact", Bytes(rng, 3 * 4096), 01755);
  a.Symlink("../top.txt", "docs/link");
  a.Symlink("/nowhere/at/all", "dangling");
  a.Scan();
  SyncResult r = Sync(a, b);
  RequireSame(a, b);
  CHECK(r.b.files_pulled == 5);
  CHECK(r.eb.files_committed == 5);
  CHECK(r.eb.preconditions_failed == 0);
  CHECK(b.Read("docs/deep/multi") == a.Read("docs/deep/multi"));
  // The peer's entries are indexed exactly: the second session moves nothing.
  SyncResult again = Sync(a, b);
  CHECK(Moved(again) == 0);
  CHECK(again.a.entries_received + again.b.entries_received == 0);
  RequireScanQuiet(a);
  RequireScanQuiet(b);
  // And the other direction too (b initiating).
  SyncResult back = Sync(b, a);
  CHECK(Moved(back) == 0);
}

TEST_CASE("RepairExecutor: setuid and setgid are stripped on disk, the entry is kept",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Write("prog", "#!/bin/sh\n", 0755);
  a.Scan();
  // An entry with set-id bits, as a peer could send it: patch a's index row.
  auto rec = a.replica().Get("prog");
  REQUIRE(rec.ok());
  Entry e = (*rec)->entry;
  e.mode = 06755;
  e.vv.Set(a.replica().node_id(), a.replica().counter() + 100);
  auto r = a.replica().ApplyRemote({{e, (*rec)->digest, (*rec)->stat}});
  REQUIRE(r.ok());
  REQUIRE(r->status[0].ok());
  Sync(a, b);
  struct stat st;
  REQUIRE(::lstat(b.Abs("prog").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  auto got = b.replica().Get("prog");
  REQUIRE(got.ok());
  CHECK((*got)->entry.mode == 06755);
  CHECK(b.replica().root() == a.replica().root());
  // The rescan compares the stat it recorded: nothing to re-version.
  RequireScanQuiet(b);
}

TEST_CASE("RepairExecutor: after a repair commit a fresh local observation changes nothing",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  GOSSYNC_SEEDED_RNG(5);
  a.Mkdir("d", 0711);
  a.Write("d/f", Bytes(rng, 9000), 0640);
  a.Symlink("f", "d/l");
  a.Scan();
  Sync(a, b);
  // What the watcher does for each path it hears about: lstat, SameFile
  // against the index's stat, and (for a file) hash + ApplyLocal.
  std::vector<store::Observation> obs;
  for (const std::string p : {"d", "d/f", "d/l"}) {
    auto st = store::LstatOne(b.root(), p);
    REQUIRE(st.ok());
    REQUIRE(st->has_value());
    auto rec = b.replica().Get(p);
    REQUIRE(rec.ok());
    REQUIRE((*rec)->stat.has_value());
    if ((*st)->kind != EntryKind::kDirectory) CHECK((*rec)->stat->SameFile(**st));
    store::Observation o{p, **st, {}};
    if ((*st)->kind == EntryKind::kFile) {
      auto h = store::HashFile(b.root(), p, **st);
      REQUIRE(h.ok());
      o.hash = *h;
    }
    obs.push_back(o);
  }
  const core::Hash256 root = b.replica().root();
  auto c = b.replica().ApplyLocal(obs);
  REQUIRE(c.ok());
  CHECK(c->changed.empty());
  CHECK(b.replica().root() == root);
}

// ---- Random trees ----

// Random local changes on one node, recorded so the test can check what
// must survive.
struct Mutator {
  ReplicaNode& n;
  std::mt19937_64& rng;
  int& next_name;
  std::set<std::string> touched;  // paths (and parents) this side changed
  std::set<std::string> deleted;  // files this side deleted

  std::vector<std::string> List(EntryKind kind) {
    std::vector<std::string> out;
    for (const auto& [p, v] : Fingerprint(n.data_dir())) {
      const bool dir = v.rfind("dir", 0) == 0, link = v.rfind("symlink", 0) == 0;
      if ((kind == EntryKind::kDirectory && dir) || (kind == EntryKind::kSymlink && link) ||
          (kind == EntryKind::kFile && !dir && !link)) {
        out.push_back(p);
      }
    }
    return out;
  }
  template <typename V>
  const std::string* Pick(const V& v) {
    return v.empty() ? nullptr : &v[rng() % v.size()];
  }
  std::string Size() {
    static const size_t kSizes[] = {0, 1, 100, 4095, 4096, 4097, 3 * 4096 + 17, 40'000};
    return Bytes(rng, kSizes[rng() % std::size(kSizes)]);
  }
  std::string NewPath() {
    auto dirs = List(EntryKind::kDirectory);
    std::string dir = (dirs.empty() || rng() % 3 == 0) ? "" : *Pick(dirs) + "/";
    return dir + "n" + std::to_string(next_name++);
  }
  void Touch(const std::string& p) {
    for (std::string_view q = p; !q.empty(); q = core::ParentPath(q)) touched.insert(std::string(q));
  }
  void Step() {
    switch (rng() % 9) {
      case 0:
      case 1: {  // new file
        std::string p = NewPath();
        n.Write(p, Size(), rng() % 4 == 0 ? 0600 : 0644);
        Touch(p);
        break;
      }
      case 2:
      case 3: {  // rewrite a file: whole, or one block of it
        auto files = List(EntryKind::kFile);
        if (const std::string* p = Pick(files)) {
          std::string c = n.Read(*p);
          if (c.size() > 8192 && rng() % 2) {
            c[4096 + rng() % 4096] ^= 1;
          } else {
            c = Size();
          }
          struct stat st;
          ::lstat(n.Abs(*p).c_str(), &st);
          n.Write(*p, c, st.st_mode & 07777);
          Touch(*p);
        }
        break;
      }
      case 4: {  // delete a file or symlink
        auto files = List(EntryKind::kFile);
        if (const std::string* p = Pick(files)) {
          n.Remove(*p);
          Touch(*p);
          deleted.insert(*p);
        }
        break;
      }
      case 5: {  // chmod
        auto files = List(EntryKind::kFile);
        static const mode_t kModes[] = {0600, 0640, 0644, 0700, 0755, 01777};
        if (const std::string* p = Pick(files)) {
          n.Chmod(*p, kModes[rng() % std::size(kModes)]);
          Touch(*p);
        }
        break;
      }
      case 6: {  // mkdir
        std::string p = NewPath();
        n.Mkdir(p, rng() % 3 == 0 ? 0700 : 0755);
        Touch(p);
        break;
      }
      case 7: {  // symlink
        std::string p = NewPath();
        n.Symlink("target-" + std::to_string(rng() % 5), p);
        Touch(p);
        break;
      }
      case 8: {  // remove a directory tree (rarely)
        auto dirs = List(EntryKind::kDirectory);
        if (rng() % 3 == 0) {
          if (const std::string* p = Pick(dirs)) {
            for (const std::string& f : List(EntryKind::kFile)) {
              if (core::IsUnder(f, *p)) deleted.insert(f);
            }
            n.Remove(*p);
            Touch(*p);
          }
        }
        break;
      }
    }
  }
};

// Hashes of every regular file's content under a data dir.
std::multiset<std::string> Contents(ReplicaNode& n) {
  std::multiset<std::string> out;
  for (const auto& [p, v] : Fingerprint(n.data_dir())) {
    if (v.rfind("file", 0) == 0) out.insert(core::ToHex(core::Sha256(n.Read(p))));
  }
  return out;
}

TEST_CASE("RepairExecutor: random changes on both sides converge in one session, losing no write",
          "[repair_executor][slow]") {
  GOSSYNC_SEEDED_RNG(20251126);
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    ReplicaNode a("alpha"), b("beta");
    int next_name = 0;
    Mutator base{a, rng, next_name, {}, {}};
    for (int i = 0; i < 60; ++i) base.Step();
    a.Scan();
    Sync(a, b);
    RequireSame(a, b);

    // Concurrent edits of the same files, then independent changes.
    Mutator ma{a, rng, next_name, {}, {}}, mb{b, rng, next_name, {}, {}};
    std::vector<std::string> both_edited;
    auto files = ma.List(EntryKind::kFile);
    for (int i = 0; i < 3 && !files.empty(); ++i) {
      const std::string p = files[rng() % files.size()];
      if (std::find(both_edited.begin(), both_edited.end(), p) != both_edited.end()) continue;
      a.Write(p, "alpha's edit of " + p + Bytes(rng, rng() % 9000));
      b.Write(p, "beta's edit of " + p + Bytes(rng, rng() % 9000));
      ma.Touch(p);
      mb.Touch(p);
      both_edited.push_back(p);
    }
    for (int i = 0; i < 25; ++i) {
      ma.Step();
      mb.Step();
    }
    a.Scan();
    b.Scan();
    // What must survive: every file either side holds now that it wrote this
    // round (the base's files may legitimately be replaced).
    std::multiset<std::string> must;
    for (ReplicaNode* n : {&a, &b}) {
      Mutator& m = n == &a ? ma : mb;
      for (const auto& [p, v] : Fingerprint(n->data_dir())) {
        if (v.rfind("file", 0) == 0 && m.touched.count(p)) {
          must.insert(core::ToHex(core::Sha256(n->Read(p))));
        }
      }
    }

    std::set<std::string> still_both;
    for (const std::string& p : both_edited) {
      if (a.Exists(p) && b.Exists(p) && a.Read(p) != b.Read(p)) still_both.insert(p);
    }
    std::vector<std::string> gone;
    for (const auto& [m, other] : {std::pair{&ma, &mb}, std::pair{&mb, &ma}}) {
      for (const std::string& p : m->deleted) {
        if (!m->n.Exists(p) && !other->touched.count(p)) gone.push_back(p);
      }
    }

    SyncResult r = Sync(a, b);
    RequireSame(a, b);
    const std::multiset<std::string> ca = Contents(a);
    for (const std::string& h : must) CHECK(ca.count(h) > 0);
    // Concurrent edits left a conflict copy beside the file.
    for (const std::string& p : both_edited) {
      // Deleted on one side afterwards: the live edit simply wins.
      if (!still_both.count(p)) continue;
      bool copy = false;
      for (const auto& [q, v] : Fingerprint(a.data_dir())) {
        copy |= core::IsConflictCopy(q) && core::ParentPath(q) == core::ParentPath(p);
      }
      CHECK(copy);
    }
    // Files deleted on one side (and not there again) and untouched on the
    // other stay deleted.
    for (const std::string& p : gone) {
      INFO(p);
      CHECK_FALSE(a.Exists(p));
      CHECK_FALSE(b.Exists(p));
    }
    CHECK(r.ea.preconditions_failed + r.eb.preconditions_failed == 0);
    SyncResult again = Sync(b, a);
    CHECK(Moved(again) == 0);
    RequireSame(a, b);
    RequireScanQuiet(a);
    RequireScanQuiet(b);
  }
}

}  // namespace
}  // namespace gossync::testutil
