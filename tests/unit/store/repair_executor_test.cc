// RepairExecutor end to end: two real replicas (SQLite, files in temp
// dirs), two RepairSessions back to back through the real codec and framing,
// each driven by RepairExecutor::Drive (tests/testutil/replica_pair.h).
#include "agent/store/repair_executor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>

#include "agent/core/conflict.h"
#include "agent/core/path.h"
#include "agent/store/scanner.h"
#include "tests/testutil/replica_pair.cc"  // NOLINT(bugprone-suspicious-include)
#include "tests/unit/core/seed.h"

namespace gossync::testutil {
namespace {

using core::Entry;
using core::EntryKind;
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

void RequireSame(ReplicaNode& a, ReplicaNode& b, bool temp_area_empty = true) {
  auto fa = Fingerprint(a.data_dir());
  auto fb = Fingerprint(b.data_dir());
  INFO("differences (" << a.name() << " | " << b.name() << "):" << FingerprintDiff(fa, fb));
  INFO("index differences:" << IndexDiff(a, b));
  REQUIRE(fa == fb);
  REQUIRE(a.replica().root() == b.replica().root());
  CHECK(a.TempFilesInDataDir().empty());
  CHECK(b.TempFilesInDataDir().empty());
  if (temp_area_empty) {
    CHECK(a.TempFilesInTempArea().empty());
    CHECK(b.TempFilesInTempArea().empty());
  }
}

// Sessions (alternating initiators) until one moves nothing; at most `max`.
int SyncUntilQuiet(ReplicaNode& a, ReplicaNode& b, int max = 4) {
  for (int i = 1; i <= max; ++i) {
    SyncResult r = i % 2 ? Sync(a, b) : Sync(b, a);
    if (Moved(r) == 0) return i;
  }
  return max + 1;
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

TEST_CASE(
    "RepairExecutor: files lose setuid and setgid on disk (the entry is kept), "
    "directories keep their exact mode",
    "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Write("prog", "#!/bin/sh\n", 0755);
  a.Mkdir("shared", 02775);
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
  REQUIRE(::lstat(b.Abs("shared").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 02775);
  CHECK(b.replica().root() == a.replica().root());
  // The rescan compares the stat it recorded: nothing to re-version.
  RequireScanQuiet(b);
  RequireScanQuiet(a);
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
    for (std::string_view q = p; !q.empty(); q = core::ParentPath(q))
      touched.insert(std::string(q));
  }
  bool kinds = false;  // also change kinds (file <-> directory <-> symlink)

  void Step() {
    switch (rng() % (kinds ? 10 : 9)) {
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
      case 9: {  // a path changes kind
        auto files = List(EntryKind::kFile);
        auto dirs = List(EntryKind::kDirectory);
        const int what = static_cast<int>(rng() % 3);
        if (what == 0 && !files.empty()) {  // file -> directory with a file in it
          const std::string p = *Pick(files);
          n.Remove(p);
          n.Mkdir(p);
          n.Write(p + "/inside", Size());
          deleted.insert(p);
          Touch(p + "/inside");
        } else if (what == 1 && !dirs.empty()) {  // directory tree -> file
          const std::string p = *Pick(dirs);
          for (const std::string& f : files) {
            if (core::IsUnder(f, p)) deleted.insert(f);
          }
          n.Remove(p);
          n.Write(p, Size());
          Touch(p);
        } else if (!files.empty()) {  // file -> symlink
          const std::string p = *Pick(files);
          n.Remove(p);
          n.Symlink("was-a-file", p);
          deleted.insert(p);
          Touch(p);
        }
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

// The files either side wrote (content or mode) since `before`, the state
// both had: a write is never lost, so each content must survive the sync.
// Content hash -> where, for the failure message.
std::map<std::string, std::string> Written(ReplicaNode& a, ReplicaNode& b,
                                           const std::map<std::string, std::string>& before) {
  std::map<std::string, std::string> out;
  for (ReplicaNode* n : {&a, &b}) {
    for (const auto& [p, v] : Fingerprint(n->data_dir())) {
      auto it = before.find(p);
      if (v.rfind("file", 0) == 0 && (it == before.end() || it->second != v)) {
        out[core::ToHex(core::Sha256(n->Read(p)))] = n->name() + ":" + p + " " + v;
      }
    }
  }
  return out;
}

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
    const auto before = Fingerprint(a.data_dir());
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
    const std::map<std::string, std::string> must = Written(a, b, before);

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
    for (const auto& [h, where] : must) {
      INFO("lost: " << where);
      CHECK(ca.count(h) > 0);
    }
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

TEST_CASE("RepairExecutor: random changes of every kind, round after round, converge",
          "[repair_executor][slow]") {
  GOSSYNC_SEEDED_RNG(777);
  ReplicaNode a("alpha"), b("beta");
  int next_name = 0;
  Mutator base{a, rng, next_name, {}, {}};
  for (int i = 0; i < 40; ++i) base.Step();
  a.Scan();
  Sync(a, b);
  for (int round = 0; round < 8; ++round) {
    INFO("round " << round);
    const auto before = Fingerprint(a.data_dir());
    Mutator ma{a, rng, next_name, {}, {}}, mb{b, rng, next_name, {}, {}};
    ma.kinds = mb.kinds = true;
    for (int i = 0; i < 12; ++i) {
      ma.Step();
      mb.Step();
    }
    a.Scan();
    b.Scan();
    const std::map<std::string, std::string> must = Written(a, b, before);
    // Kinds can take more than one session: a directory that must become a
    // file waits for its entries' tombstones, or wins a conflict.
    const int sessions = SyncUntilQuiet(a, b, 5);
    CHECK(sessions <= 4);
    RequireSame(a, b, /*temp_area_empty=*/false);
    const std::multiset<std::string> ca = Contents(a);
    for (const auto& [h, where] : must) {
      INFO("lost: " << where);
      CHECK(ca.count(h) > 0);
    }
    RequireScanQuiet(a);
    RequireScanQuiet(b);
  }
}

TEST_CASE("RepairExecutor: a directory replaced by a file while the peer adds to it is kept",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Mkdir("p");
  a.Write("p/old", "old");
  a.Scan();
  Sync(a, b);
  a.Remove("p");
  a.Write("p", "alpha's file where the directory was");
  a.Scan();
  b.Write("p/new", "beta's new file in the directory");
  b.Scan();
  SyncResult first = Sync(a, b);
  CHECK(first.eb.dirs_reasserted == 1);
  CHECK(SyncUntilQuiet(a, b) <= 3);
  RequireSame(a, b, /*temp_area_empty=*/false);
  CHECK(a.Read("p/new") == "beta's new file in the directory");
  CHECK(Contents(a).count(core::ToHex(core::Sha256("alpha's file where the directory was"))) == 1);
}

// ---- Blocks ----

TEST_CASE("RepairExecutor: a large file with one changed block moves one block",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  GOSSYNC_SEEDED_RNG(3);
  std::string big = Bytes(rng, 1 << 20);  // 256 blocks of 4 KiB
  a.Write("big", big);
  a.Scan();
  SyncResult first = Sync(a, b);
  CHECK(first.b.blocks_received == 256);
  big[500'000] ^= 1;
  a.Write("big", big);
  a.Scan();
  SyncResult r = Sync(a, b);
  CHECK(r.b.blocks_received == 1);
  CHECK(r.b.content_bytes_received == 4096);
  CHECK(r.eb.blocks_from_old == 255);
  CHECK(r.ea.bytes_served == 4096);
  RequireSame(a, b);
}

TEST_CASE("RepairExecutor: an interrupted transfer resumes from the temp file",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  GOSSYNC_SEEDED_RNG(4);
  a.Write("big", Bytes(rng, (1 << 20) + 100));  // 257 blocks
  a.Scan();
  {
    SessionPair pair(a, b);
    int blocks = 0;
    pair.b().on_frame = [&](const core::RepairMessage& m) {
      return std::holds_alternative<core::BlockMsg>(m) && ++blocks > 100;  // cut at the 101st
    };
    pair.Run();
    REQUIRE(pair.b().aborted);
    CHECK(pair.b().exec.stats().blocks_written == 100);
  }
  CHECK_FALSE(b.Exists("big"));
  CHECK(b.TempFilesInTempArea().size() == 1);
  CHECK(b.TempFilesInDataDir().empty());
  // A restart between the two sessions changes nothing.
  b.Reopen();
  SyncResult r = Sync(a, b);
  CHECK(r.eb.blocks_in_temp == 100);
  CHECK(r.b.blocks_received == 157);
  RequireSame(a, b);
}

// ---- Preconditions ----

TEST_CASE("RepairExecutor: a local change made between the decision and the commit is kept",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  GOSSYNC_SEEDED_RNG(6);
  a.Write("f", Bytes(rng, 20'000));
  a.Scan();
  Sync(a, b);
  const std::string theirs = "alpha's new version " + Bytes(rng, 30'000);
  a.Write("f", theirs);
  a.Scan();
  const bool scanned = GENERATE(false, true);
  INFO((scanned ? "the scanner saw the local change" : "the scanner did not see it yet"));
  const std::string mine = "beta's local edit";
  {
    SessionPair pair(a, b);
    bool changed = false;
    pair.b().on_frame = [&](const core::RepairMessage& m) {
      if (!changed && std::holds_alternative<core::BlockMsg>(m)) {
        changed = true;  // the decision is made, the blocks are coming
        b.Write("f", mine);
        if (scanned) b.Scan();
      }
      return false;
    };
    pair.Run();
    REQUIRE(pair.b().finished);
    CHECK(changed);
    CHECK(pair.b().exec.stats().preconditions_failed == 1);
    CHECK(pair.b().finished->stats.skipped == 1);
  }
  CHECK(b.Read("f") == mine);
  // Recorded, it is concurrent with alpha's: a conflict keeps both.
  b.Scan();
  CHECK(SyncUntilQuiet(a, b) <= 2);
  RequireSame(a, b, /*temp_area_empty=*/false);
  std::multiset<std::string> all = Contents(a);
  CHECK(all.count(core::ToHex(core::Sha256(mine))) == 1);
  CHECK(all.count(core::ToHex(core::Sha256(theirs))) == 1);
}

TEST_CASE("RepairExecutor: never deletes or replaces what the index does not know",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Mkdir("d");
  a.Write("d/x", "x");
  a.Write("y", "y");
  a.Scan();
  Sync(a, b);
  // alpha deletes both; beta has, unscanned, a new file in d and a new y.
  a.Remove("d");
  a.Remove("y");
  a.Scan();
  b.Write("d/local", "not scanned yet");
  b.Write("y", "rewritten, not scanned yet");
  SyncResult r = Sync(a, b);
  CHECK(b.Read("d/local") == "not scanned yet");
  CHECK(b.Read("y") == "rewritten, not scanned yet");
  CHECK_FALSE(b.Exists("d/x"));
  CHECK(r.eb.preconditions_failed == 1);  // y
  CHECK(r.eb.dirs_kept == 1);             // d, for d/local
  // Once scanned, beta's changes win over the deletes everywhere.
  b.Scan();
  CHECK(SyncUntilQuiet(a, b) <= 3);
  RequireSame(a, b);
  CHECK(a.Read("d/local") == "not scanned yet");
  CHECK(a.Read("y") == "rewritten, not scanned yet");
}

// ---- Directories, ordering and kinds ----

TEST_CASE("RepairExecutor: a deleted directory goes with everything in it, whatever the order",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Mkdir("d");
  a.Mkdir("d/e");
  a.Mkdir("d/e/f");
  for (int i = 0; i < 40; ++i) {
    a.Write("d/" + std::to_string(i), std::to_string(i));
    a.Write("d/e/f/" + std::to_string(i), std::to_string(i));
  }
  a.Scan();
  Sync(a, b);
  a.Remove("d");
  a.Scan();
  SyncResult r = Sync(a, b);
  CHECK_FALSE(b.Exists("d"));
  CHECK(r.eb.parents_revived == 0);
  RequireSame(a, b);
  CHECK(Moved(Sync(b, a)) == 0);
}

TEST_CASE(
    "RepairExecutor: a file created in a directory the peer deleted revives it in one session",
    "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Mkdir("d", 0700);
  a.Write("d/x", "x");
  a.Scan();
  Sync(a, b);
  a.Remove("d");
  a.Scan();
  b.Write("d/new", "beta's new file");
  b.Scan();
  const bool a_initiates = GENERATE(true, false);
  SyncResult r = a_initiates ? Sync(a, b) : Sync(b, a);
  RequireSame(a, b);
  CHECK(a.Read("d/new") == "beta's new file");
  CHECK_FALSE(a.Exists("d/x"));
  // Both sides made the same revived entry from the same tombstone.
  auto d = a.replica().Get("d");
  REQUIRE(d.ok());
  CHECK((*d)->entry.live());
  CHECK((*d)->entry.mode == 0755);
  CHECK(Moved(Sync(a, b)) == 0);
  RequireScanQuiet(a);
  RequireScanQuiet(b);
}

TEST_CASE("RepairExecutor: files arriving before their directories get placeholders",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  // Entries stream in bucket order: pick a directory whose child sorts first.
  std::string p = "p";
  for (int i = 0; core::MerkleTree::BucketOf(p + "/q", core::kDefaultTreeDepth) >
                  core::MerkleTree::BucketOf(p, core::kDefaultTreeDepth);
       ++i) {
    p = "p" + std::to_string(i);
  }
  a.Mkdir(p, 0700);
  a.Mkdir(p + "/q", 0750);
  for (int i = 0; i < 50; ++i) a.Write(p + "/q/" + std::to_string(i), std::to_string(i));
  a.Scan();
  SyncResult r = Sync(a, b);
  RequireSame(a, b);  // the modes are the peer's, not the placeholders'
  CHECK(r.eb.parents_created == 1);
  CHECK(r.eb.preconditions_failed == 0);
  auto d = b.replica().Get(p);
  REQUIRE(d.ok());
  CHECK(!(*d)->entry.vv.empty());
  CHECK(Moved(Sync(b, a)) == 0);
}

TEST_CASE("RepairExecutor: a placeholder directory never overrides a real one",
          "[repair_executor]") {
  // beta made a placeholder for "p" (a child came first) and the session
  // was cut before p's entry; the next session replaces it with the real one.
  ReplicaNode a("alpha"), b("beta");
  a.Mkdir("p", 0700);
  a.Write("p/f", "f");
  a.Scan();
  auto child_rec = a.replica().Get("p/f");
  REQUIRE(child_rec.ok());
  const Entry child = (*child_rec)->entry;
  store::RepairExecutor ex(b.context());
  core::repair::PullFile pull{1, child, 4096, {child.hash}};
  REQUIRE(std::get<store::completion::PullReady>(*ex.Execute(pull)).have.ok());
  ex.Execute(core::repair::WriteBlock{1, "p/f", 0, 0, std::vector<uint8_t>{'f'}});
  auto done = ex.Execute(core::repair::CommitFile{1, child, std::nullopt});
  REQUIRE(std::get<store::completion::Committed>(*done).status.ok());
  CHECK(ex.stats().parents_created == 1);
  CHECK(ex.TakeAppliedPaths() == std::vector<std::string>{"p", "p/f"});
  CHECK(ex.TakeAppliedPaths().empty());
  auto p = b.replica().Get("p");
  REQUIRE(p.ok());
  REQUIRE(p->has_value());
  CHECK((*p)->entry.vv.empty());
  // Sent to alpha, the placeholder changes nothing there; alpha's p wins here.
  CHECK(SyncUntilQuiet(a, b) <= 2);
  RequireSame(a, b);
  auto real = b.replica().Get("p");
  CHECK(!(*real)->entry.vv.empty());
}

TEST_CASE("RepairExecutor: changes of kind converge", "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta");
  a.Write("k1", "a file, later a directory");
  a.Mkdir("k2");
  a.Write("k2/child", "in a directory, later a symlink");
  a.Symlink("somewhere", "k3");
  a.Write("k4", "a file, later a symlink");
  a.Mkdir("k5");
  a.Scan();
  Sync(a, b);
  a.Remove("k1");
  a.Mkdir("k1");
  a.Write("k1/inside", "inside");
  a.Remove("k2");
  a.Symlink("elsewhere", "k2");
  a.Remove("k3");
  a.Write("k3", "a symlink, now a file");
  a.Remove("k4");
  a.Symlink("k4-target", "k4");
  a.Remove("k5");
  a.Write("k5", "an empty directory, now a file");
  a.Scan();
  CHECK(SyncUntilQuiet(a, b) <= 3);
  RequireSame(a, b);
  CHECK(b.Read("k1/inside") == "inside");
  CHECK(b.Read("k3") == "a symlink, now a file");
}

// ---- Ignore patterns and concurrent sessions ----

TEST_CASE("RepairExecutor: ignored paths are never applied from a peer nor served",
          "[repair_executor]") {
  ReplicaNode a("alpha"), b("beta", {"*.log", "cache/"});
  a.Write("x.log", "log");
  a.Mkdir("cache");
  a.Write("cache/c", "cached");
  a.Write("ok", "ok");
  a.Scan();
  SessionPair pair(a, b);
  pair.Run();
  REQUIRE(pair.b().finished);
  CHECK(b.Exists("ok"));
  CHECK_FALSE(b.Exists("x.log"));
  CHECK_FALSE(b.Exists("cache"));
  CHECK(pair.b().exec.stats().ignored == 3);
  auto x = b.replica().Get("x.log");
  REQUIRE(x.ok());
  CHECK(!x->has_value());
  // Served neither: an index row for an ignored path (the patterns changed)
  // is not read for a peer.
  store::RepairExecutor ex(b.context());
  b.Write("old.log", "from before the pattern");
  core::repair::ReadBlocks rb{1, "old.log", "", core::Sha256("from before the pattern"), 4096, {0}};
  std::optional<store::Completion> c = ex.Execute(rb);
  REQUIRE(c);
  CHECK(std::get<store::completion::BlocksRead>(*c).blocks.status().code() == Code::kNotFound);
}

TEST_CASE("RepairExecutor: two sessions do not fetch the same version into one temp file",
          "[repair_executor]") {
  ReplicaNode b("beta");
  store::RepairExecutor one(b.context()), two(b.context());
  Entry e;
  e.path = "f";
  e.mode = 0644;
  e.size = 5;
  e.hash = core::Sha256("hello");
  e.vv.Set(7, 1);
  e.origin = "alpha";
  core::repair::PullFile pull{1, e, 4096, {e.hash}};
  auto first = one.Execute(pull);
  REQUIRE(first);
  CHECK(std::get<store::completion::PullReady>(*first).have.ok());
  auto second = two.Execute(pull);
  REQUIRE(second);
  CHECK(std::get<store::completion::PullReady>(*second).have.status().code() == Code::kUnavailable);
  one.EndSession();
  auto third = two.Execute(pull);
  CHECK(std::get<store::completion::PullReady>(*third).have.ok());
}

// ---- Serving a hostile peer ----

TEST_CASE(
    "RepairExecutor: reads for a peer outside the index, behind a symlink or with a wrong "
    "hash fail and read nothing",
    "[repair_executor]") {
  ReplicaNode a("alpha");
  a.Mkdir("d");
  a.Write("d/f", "indexed content");
  a.Write("g", "g content");
  a.Scan();
  a.Write("secret", "on disk, not indexed");
  const core::Hash256 f_hash = core::Sha256("indexed content");
  store::RepairExecutor ex(a.context());
  auto blocks = [&](std::string path, core::Hash256 hash, std::string alt = "") {
    auto c = ex.Execute(core::repair::ReadBlocks{1, path, alt, hash, 4096, {0}});
    REQUIRE(c);
    return std::get<store::completion::BlocksRead>(*c).blocks;
  };
  auto list = [&](std::string path, core::Hash256 hash) {
    auto c = ex.Execute(core::repair::ReadBlockList{2, path, "", hash, 4096});
    REQUIRE(c);
    return std::get<store::completion::BlockListRead>(*c).list;
  };
  // The good case first, so the failures below are the checks' doing.
  auto ok = blocks("d/f", f_hash);
  REQUIRE(ok.ok());
  CHECK(std::string(ok->at(0).begin(), ok->at(0).end()) == "indexed content");
  REQUIRE(list("d/f", f_hash).ok());
  const uint64_t served = ex.stats().bytes_served;

  CHECK(blocks("secret", core::Sha256("on disk, not indexed")).status().code() == Code::kNotFound);
  CHECK(list("secret", core::Sha256("on disk, not indexed")).status().code() == Code::kNotFound);
  CHECK(blocks("g", f_hash).status().code() == Code::kNotFound);  // wrong hash
  CHECK(blocks("../etc/passwd", f_hash).status().code() == Code::kNotFound);
  CHECK(blocks("nope", f_hash, "g").status().code() == Code::kNotFound);
  // A block index past the end.
  auto past = ex.Execute(core::repair::ReadBlocks{3, "d/f", "", f_hash, 4096, {0, 1}});
  CHECK(!std::get<store::completion::BlocksRead>(*past).blocks.ok());
  // Changed on disk since indexed (same size, new inode).
  a.Write("g", "G content");
  CHECK(blocks("g", core::Sha256("g content")).status().code() == Code::kAborted);
  CHECK(list("g", core::Sha256("g content")).status().code() == Code::kAborted);
  // "d" swapped for a symlink to a directory outside, holding the same file.
  const std::string outside = a.state_dir() + "/outside";
  REQUIRE(::mkdir(outside.c_str(), 0755) == 0);
  {
    FILE* f = std::fopen((outside + "/f").c_str(), "w");
    std::fputs("indexed content", f);
    std::fclose(f);
  }
  a.Remove("d");
  a.Symlink(outside, "d");
  auto via_link = blocks("d/f", f_hash);
  CHECK(!via_link.ok());
  CHECK(via_link.status().code() != Code::kAborted);  // refused by the resolver, not by a stat
  CHECK(!list("d/f", f_hash).ok());
  CHECK(ex.stats().bytes_served == served);

  // The same through the protocol: a peer's BLOCK_REQ for an unindexed path
  // gets a REQ_ERROR, and nothing is read.
  store::ReplicaDataset view(&a.replica());
  core::RepairOptions o;
  o.local_name = "alpha";
  o.peer_name = "mallory";
  o.block_size = 4096;
  core::RepairSession session(o, &view);
  auto out = ex.Drive(session, session.Start(1), 1);
  core::HelloMsg hello;
  hello.name = "mallory";
  hello.depth = static_cast<uint8_t>(view.depth());
  hello.root = view.Root();  // claims to be in sync
  out = ex.Drive(session, session.OnMessage(2, hello), 2);
  out = ex.Drive(session,
                 session.OnMessage(
                     3, core::BlockReqMsg{9, "secret", core::Sha256("on disk, not indexed"), {0}}),
                 3);
  bool req_error = false;
  for (const auto& act : out) {
    if (const auto* send = std::get_if<core::repair::Send>(&act)) {
      if (const auto* e = std::get_if<core::ReqErrorMsg>(&send->message)) {
        req_error = e->req == 9 && e->code == static_cast<uint8_t>(core::ReqErrorCode::kNotFound);
      }
      CHECK(!std::holds_alternative<core::BlockMsg>(send->message));
    }
  }
  CHECK(req_error);
  CHECK(ex.stats().bytes_served == served);
}

}  // namespace
}  // namespace gossync::testutil

namespace gossync::testutil {
namespace {

// ---- Figures (not part of the suite: ./unit_store "[bench]") ----

TEST_CASE("RepairExecutor: time to sync 2,000 small files and one 50 MiB file", "[.][bench]") {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  ReplicaNode a("alpha"), b("beta");
  std::mt19937_64 rng(1);
  for (int d = 0; d < 20; ++d) {
    a.Mkdir("d" + std::to_string(d));
    for (int i = 0; i < 100; ++i) {
      a.Write("d" + std::to_string(d) + "/f" + std::to_string(i), Bytes(rng, 1000 + rng() % 3000));
    }
  }
  std::string big = Bytes(rng, 50 << 20);
  a.Write("big", big);
  auto t0 = Clock::now();
  a.Scan();
  const double scan_ms = ms(t0);
  PairOptions o;
  o.block_size = core::kDefaultBlockSize;
  t0 = Clock::now();
  SyncResult r = Sync(a, b, o);
  const double sync_ms = ms(t0);
  RequireSame(a, b);
  t0 = Clock::now();
  SyncResult idle = Sync(a, b, o);
  const double idle_ms = ms(t0);
  big[25 << 20] ^= 1;
  a.Write("big", big);
  a.Scan();
  t0 = Clock::now();
  SyncResult one = Sync(a, b, o);
  const double one_ms = ms(t0);
  RequireSame(a, b);
  std::printf(
      "bench_repair: scan of alpha %.0f ms; initial sync of 2,001 files (%.1f MiB) %.0f ms "
      "(%lu files, %lu blocks, %d flights); idle session %.1f ms; one changed 128 KiB block of "
      "the 50 MiB file %.0f ms (%lu block moved, %lu reused)\n",
      scan_ms, (r.b.content_bytes_received) / 1048576.0, sync_ms, r.b.files_pulled,
      r.b.blocks_received, r.flights, idle_ms, one_ms, one.b.blocks_received,
      one.eb.blocks_from_old);
  std::printf("bench_repair: rerun with: ./build/tests/unit_store \"[bench]\"\n");
  CHECK(Moved(idle) == 0);
  CHECK(one.b.blocks_received == 1);
}

}  // namespace
}  // namespace gossync::testutil

namespace gossync::testutil {
namespace {

TEST_CASE("RepairExecutor: content that verifies block by block but not as a whole is dropped",
          "[repair_executor]") {
  ReplicaNode b("beta");
  store::RepairExecutor ex(b.context());
  const std::string real = std::string(4096, 'a') + std::string(100, 'b');
  const std::string lie = std::string(4096, 'a') + std::string(100, 'c');
  Entry e;
  e.path = "f";
  e.mode = 0644;
  e.size = real.size();
  e.hash = core::Sha256(real);
  e.vv.Set(7, 1);
  e.origin = "alpha";
  // The peer's block list describes `lie`, the entry `real`.
  std::vector<core::Hash256> hashes{core::Sha256(lie.substr(0, 4096)),
                                    core::Sha256(lie.substr(4096))};
  auto ready = ex.Execute(core::repair::PullFile{1, e, 4096, hashes});
  REQUIRE(std::get<store::completion::PullReady>(*ready).have.ok());
  for (uint32_t i = 0; i < 2; ++i) {
    const std::string part = lie.substr(i * 4096, 4096);
    ex.Execute(core::repair::WriteBlock{1, "f", i, uint64_t{i} * 4096,
                                        std::vector<uint8_t>(part.begin(), part.end())});
  }
  auto done = ex.Execute(core::repair::CommitFile{1, e, std::nullopt});
  CHECK(std::get<store::completion::Committed>(*done).status.code() == Code::kCorruption);
  CHECK_FALSE(b.Exists("f"));
  CHECK(b.TempFilesInTempArea().empty());  // not resumed from next time
  auto rec = b.replica().Get("f");
  REQUIRE(rec.ok());
  CHECK(!rec->has_value());
}

}  // namespace
}  // namespace gossync::testutil
