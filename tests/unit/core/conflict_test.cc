#include "agent/core/conflict.h"

#include <catch2/catch.hpp>
#include <random>

#include "agent/core/hlc.h"
#include "agent/core/path.h"
#include "tests/unit/core/seed.h"

namespace gossync::core {
namespace {

// 2026-11-26 10:15:00 UTC.
constexpr uint64_t kNov26Ms = 1795688100000;

Entry File(std::string path, std::string content, VersionVector vv, uint64_t hlc,
           std::string origin) {
  Entry e;
  e.path = std::move(path);
  e.kind = EntryKind::kFile;
  e.mode = 0644;
  e.size = content.size();
  e.mtime_ns = static_cast<int64_t>(Hlc::Millis(hlc)) * 1'000'000;
  e.hash = Sha256(content);
  e.vv = std::move(vv);
  e.hlc = hlc;
  e.origin = std::move(origin);
  return e;
}

Entry Tombstone(Entry e) {
  e.deleted = true;
  e.hash = kZeroHash;
  e.size = 0;
  e.target.clear();
  return e;
}

Entry Dir(std::string path, VersionVector vv, uint64_t hlc, std::string origin) {
  Entry e;
  e.path = std::move(path);
  e.kind = EntryKind::kDirectory;
  e.mode = 0755;
  e.vv = std::move(vv);
  e.hlc = hlc;
  e.origin = std::move(origin);
  return e;
}

const VersionVector kA1({{1, 1}});
const VersionVector kB1({{2, 1}});
const VersionVector kA1B1({{1, 1}, {2, 1}});
const uint64_t kEarly = Hlc::Pack(kNov26Ms, 0);
const uint64_t kLate = Hlc::Pack(kNov26Ms + 1000, 0);

TEST_CASE("Resolve: ordered version vectors decide without looking at content", "[conflict]") {
  Entry old = File("f", "old", kA1, kLate, "alpha");
  Entry newer = File("f", "new", kA1B1, kEarly, "beta");
  Resolution r = Resolve(old, newer);
  CHECK(r.decision == Decision::kTakeRemote);
  CHECK(r.winner == newer);
  CHECK_FALSE(r.copy);
  r = Resolve(newer, old);
  CHECK(r.decision == Decision::kKeepLocal);
  CHECK(r.winner == newer);
  r = Resolve(newer, newer);
  CHECK(r.decision == Decision::kSame);
  CHECK(r.winner == newer);
  // A delete that saw the write wins over it: that is a delete, not a conflict.
  Entry del = Tombstone(File("f", "", kA1B1, kLate, "beta"));
  CHECK(Resolve(old, del).decision == Decision::kTakeRemote);
}

TEST_CASE("Resolve: concurrent identical content merges silently", "[conflict]") {
  Entry a = File("f", "same", kA1, kEarly, "alpha");
  Entry b = File("f", "same", kB1, kLate, "beta");
  b.mtime_ns += 5;  // mtime is not content
  Resolution r = Resolve(a, b);
  REQUIRE(r.decision == Decision::kMerge);
  CHECK(r.winner->vv == kA1B1);
  CHECK(r.winner->hash == a.hash);
  CHECK(r.winner->origin == "beta");  // metadata of the greater (hlc, origin)
  CHECK_FALSE(r.copy);
  CHECK(Resolve(b, a).winner == r.winner);

  Entry ta = Tombstone(a), tb = Tombstone(File("f", "other", kB1, kLate, "beta"));
  r = Resolve(ta, tb);
  CHECK(r.decision == Decision::kMerge);
  CHECK(r.winner->deleted);
  CHECK(r.winner->vv == kA1B1);

  Entry d1 = Dir("d", kA1, kEarly, "alpha"), d2 = Dir("d", kB1, kLate, "beta");
  d2.mtime_ns = 12345;
  CHECK(Resolve(d1, d2).decision == Decision::kMerge);
}

TEST_CASE("Resolve: concurrent different content keeps the loser as a copy", "[conflict]") {
  Entry a = File("a/report.csv", "alpha's", kA1, kLate, "alpha");
  Entry b = File("a/report.csv", "beta's", kB1, kEarly, "beta");
  Resolution r = Resolve(a, b);
  REQUIRE(r.decision == Decision::kConflict);
  CHECK(r.winner->hash == a.hash);
  CHECK(r.winner->vv == kA1B1);
  REQUIRE(r.copy);
  CHECK(r.copy->path == "a/report.sync-conflict-20261126-101500-beta.csv");
  CHECK(r.copy->hash == b.hash);
  CHECK(r.copy->vv == b.vv);
  CHECK(r.copy->hlc == b.hlc);
  CHECK(r.copy->origin == "beta");
  CHECK(ValidateEntry(*r.copy).ok());
  Resolution s = Resolve(b, a);
  CHECK(s.decision == Decision::kConflict);
  CHECK(s.winner == r.winner);
  CHECK(s.copy == r.copy);
}

TEST_CASE("Resolve: equal version vectors with different content still converge", "[conflict]") {
  // A node restored from a backup reuses counter 1 for a different write.
  Entry a = File("f", "before restore", kA1, kEarly, "alpha");
  Entry b = File("f", "after restore", kA1, kLate, "alpha");
  Resolution ab = Resolve(a, b), ba = Resolve(b, a);
  REQUIRE(ab.decision == Decision::kConflict);
  CHECK(ab.winner == ba.winner);
  CHECK(ab.copy == ba.copy);
  CHECK(ab.winner->hash == b.hash);
  REQUIRE(ab.copy);
  CHECK(ab.copy->hash == a.hash);
  // Same digest (hlc and origin are not in it): nothing to do.
  Entry a2 = a;
  a2.hlc = kLate;
  CHECK(Resolve(a, a2).decision == Decision::kSame);
}

TEST_CASE("Resolve: equal HLCs fall back to the origin name", "[conflict]") {
  Entry a = File("f", "1", kA1, kEarly, "alpha");
  Entry b = File("f", "2", kB1, kEarly, "beta");
  CHECK(Resolve(a, b).winner->origin == "beta");
  CHECK(Resolve(b, a).winner->origin == "beta");
}

TEST_CASE("Resolve: a live version beats a concurrent tombstone", "[conflict]") {
  Entry write = File("f", "precious", kA1, kEarly, "alpha");
  Entry del = Tombstone(File("f", "", kB1, kLate, "beta"));  // later, yet loses
  for (bool flip : {false, true}) {
    Resolution r = flip ? Resolve(del, write) : Resolve(write, del);
    CHECK(r.decision == Decision::kConflict);
    CHECK(r.winner->live());
    CHECK(r.winner->hash == write.hash);
    CHECK(r.winner->vv == kA1B1);
    CHECK_FALSE(r.copy);  // nothing to keep of a deletion
  }
}

TEST_CASE("Resolve: a directory beats a concurrent file, which becomes the copy", "[conflict]") {
  Entry dir = Dir("x", kA1, kEarly, "alpha");
  Entry file = File("x", "data", kB1, kLate, "beta");
  for (bool flip : {false, true}) {
    Resolution r = flip ? Resolve(file, dir) : Resolve(dir, file);
    REQUIRE(r.decision == Decision::kConflict);
    CHECK(r.winner->kind == EntryKind::kDirectory);
    REQUIRE(r.copy);
    CHECK(r.copy->kind == EntryKind::kFile);
    CHECK(r.copy->path == "x.sync-conflict-20261126-101501-beta");
  }
  // Two directories that differ (mode): no copy of a directory.
  Entry d2 = Dir("x", kB1, kLate, "beta");
  d2.mode = 0700;
  Resolution r = Resolve(dir, d2);
  CHECK(r.decision == Decision::kConflict);
  CHECK(r.winner->mode == 0700);
  CHECK_FALSE(r.copy);
}

// The dot tests: nodes 1, 2 and 3 (n1, n2, n3).
Entry Written(std::string content, VersionVector vv, VvPair dot, uint64_t hlc, std::string origin) {
  Entry e = File("f", std::move(content), std::move(vv), hlc, std::move(origin));
  e.dot = dot;
  REQUIRE(ValidateEntry(e).ok());
  return e;
}

Entry Deleted(VersionVector vv, uint64_t hlc, std::string origin) {
  Entry e = Tombstone(File("f", "", std::move(vv), hlc, std::move(origin)));
  REQUIRE(ValidateEntry(e).ok());
  return e;
}

// Resolve(a, b), checked to agree with Resolve(b, a) on winner and copy.
Resolution Both(const Entry& a, const Entry& b) {
  Resolution ab = Resolve(a, b), ba = Resolve(b, a);
  REQUIRE(ab.winner == ba.winner);
  REQUIRE(ab.copy == ba.copy);
  return ab;
}

TEST_CASE("Resolve: a delete that saw the content wins after a merge with another delete",
          "[conflict][dot]") {
  // n1 writes B; n2 sees it and deletes it (T2); n3 concurrently deletes an
  // older version (T3, concurrent with B). Some node meets B and T3 first:
  // B wins (T3 did not see it), with the merged VV, now concurrent with T2.
  const uint64_t t = kEarly;
  Entry b = Written("B", VersionVector({{1, 16}, {3, 3}}), {1, 16}, t + 5, "n1");
  Entry t2 = Deleted(VersionVector({{1, 16}, {2, 19}, {3, 3}}), t + 9, "n2");
  Entry t3 = Deleted(VersionVector({{3, 10}}), t + 7, "n3");

  Resolution first = Both(b, t3);
  REQUIRE(first.decision == Decision::kConflict);
  REQUIRE(first.winner->live());  // T3 did not see B: a write is never lost to a delete
  CHECK(first.winner->dot == b.dot);
  CHECK(first.winner->vv == VersionVector({{1, 16}, {3, 10}}));
  CHECK_FALSE(first.copy);

  // T2 saw B (its VV covers B's dot): B stays deleted, no copy is made.
  Resolution second = Both(*first.winner, t2);
  REQUIRE(second.decision == Decision::kConflict);
  CHECK(second.winner->deleted);
  CHECK(second.winner->vv == VersionVector({{1, 16}, {2, 19}, {3, 10}}));
  CHECK_FALSE(second.copy);

  // The other order reaches the same entry: T2 dominates B, then T2 and T3
  // merge as two deletions.
  Resolution other = Both(b, t2);
  REQUIRE(other.decision != Decision::kConflict);
  Resolution other2 = Both(*other.winner, t3);
  REQUIRE(other2.decision == Decision::kMerge);
  CHECK(other2.winner->deleted);
  CHECK(other2.winner->vv == second.winner->vv);
}

TEST_CASE("Resolve: a delete that saw the content wins after a conflict with another write",
          "[conflict][dot]") {
  // As seen in the chaos test: n3 writes W and deletes it (T); n2
  // concurrently writes X. W beats X (later), X becomes the copy; the merged
  // W is concurrent with T, which saw W: T wins, X stays as the copy.
  Entry w = Written("W", VersionVector({{3, 21}}), {3, 21}, kLate, "n3");
  Entry x = Written("X", VersionVector({{2, 9}}), {2, 9}, kEarly, "n2");
  Entry t = Deleted(VersionVector({{3, 27}}), kLate + 1, "n3");
  Resolution first = Both(w, x);
  REQUIRE(first.decision == Decision::kConflict);
  CHECK(first.winner->hash == w.hash);
  REQUIRE(first.copy);
  CHECK(first.copy->hash == x.hash);
  Resolution second = Both(*first.winner, t);
  CHECK(second.winner->deleted);
  CHECK(second.winner->vv == VersionVector({{2, 9}, {3, 27}}));
  CHECK_FALSE(second.copy);
  // X met T first: T did not see X, so X wins; W then is dominated.
  Resolution xt = Both(x, t);
  CHECK(xt.winner->hash == x.hash);
  CHECK(xt.winner->vv.Compare(w.vv) == VvOrder::kGreater);
}

TEST_CASE("Resolve: a dot decides only between concurrent versions", "[conflict][dot]") {
  Entry w = Written("W", VersionVector({{1, 4}}), {1, 4}, kEarly, "n1");
  // A catch-up tombstone is the live entry's own history, deleted: equal
  // VVs, and the live version wins (catch_up.h: the file comes back rather
  // than being lost when the rule was wrong for some peer).
  Entry caught = Deleted(w.vv, w.hlc, w.origin);
  Resolution r = Both(w, caught);
  CHECK(r.winner->live());
  CHECK(r.winner->hash == w.hash);
  // A concurrent tombstone that did not see the dot loses, even with a
  // newer counter of the same node... which cannot happen without seeing
  // it; a tombstone of another node that saw an older write loses.
  Entry older_del = Deleted(VersionVector({{1, 3}, {2, 1}}), kLate, "n2");
  r = Both(w, older_del);
  CHECK(r.winner->live());
  // Without a dot (an entry indexed before dots existed) the plain rule holds.
  Entry undotted = w;
  undotted.dot = {};
  undotted.vv = VersionVector({{1, 4}, {3, 1}});
  Entry saw = Deleted(VersionVector({{1, 4}, {2, 1}}), kLate, "n2");
  r = Both(undotted, saw);
  CHECK(r.winner->live());
  Entry dotted = undotted;
  dotted.dot = {1, 4};
  r = Both(dotted, saw);
  CHECK(r.winner->deleted);
}

TEST_CASE("Resolve: an edit made after seeing the other version wins whatever the clocks say",
          "[conflict][dot]") {
  // n2 writes W; it wins a conflict against n3's X (so W's VV has n3:5).
  // n1 saw W (not X) and edits it to Y, with a clock behind W's. Y and the
  // merged W are concurrent; Y saw W's content: Y wins, W needs no copy.
  Entry w = Written("W", VersionVector({{2, 9}, {3, 5}}), {2, 9}, kLate, "n2");
  Entry y = Written("Y", VersionVector({{1, 8}, {2, 9}}), {1, 8}, kEarly, "n1");
  Resolution r = Both(w, y);
  REQUIRE(r.decision == Decision::kConflict);
  CHECK(r.winner->hash == y.hash);
  CHECK(r.winner->dot == y.dot);
  CHECK(r.winner->vv == VersionVector({{1, 8}, {2, 9}, {3, 5}}));
  CHECK_FALSE(r.copy);
  // Neither saw the other: the clocks decide and the loser is kept.
  Entry z = Written("Z", VersionVector({{1, 8}, {2, 7}}), {1, 8}, kEarly, "n1");
  r = Both(w, z);
  CHECK(r.winner->hash == w.hash);
  REQUIRE(r.copy);
  CHECK(r.copy->hash == z.hash);
}

// Random valid entries for one path, from small pools so that every branch
// (equal, ordered, concurrent; same and different content; ties) is hit.
Entry RandomEntry(std::mt19937_64& rng) {
  static const char* kOrigins[] = {"alpha", "beta", "gamma"};
  static const char* kContents[] = {"x", "y", "z"};
  Entry e;
  e.path = "dir/data.bin";
  std::vector<VvPair> pairs;
  for (NodeId n = 1; n <= 3; ++n) {
    if (rng() % 2) pairs.push_back({n, 1 + rng() % 2});
  }
  if (pairs.empty()) pairs.push_back({1 + rng() % 3, 1});
  e.vv = VersionVector(pairs);
  e.hlc = Hlc::Pack(kNov26Ms + rng() % 3 * 1000, static_cast<uint16_t>(rng() % 2));
  e.origin = kOrigins[rng() % 3];
  e.mtime_ns = static_cast<int64_t>(rng() % 3);
  switch (rng() % 6) {
    case 0:
      e.kind = EntryKind::kDirectory;
      e.mode = rng() % 2 ? 0755 : 0700;
      break;
    case 1:
      e.kind = EntryKind::kSymlink;
      e.mode = 0777;
      e.target = kContents[rng() % 3];
      e.hash = Sha256(e.target);
      e.size = e.target.size();
      break;
    default:
      e.kind = EntryKind::kFile;
      e.mode = rng() % 4 ? 0644 : 0600;
      e.hash = Sha256(std::string_view(kContents[rng() % 3]));
      e.size = 1;
  }
  if (rng() % 4 == 0) {
    e = Tombstone(e), e.mode = 0, e.mtime_ns = 0;
  } else if (rng() % 3 != 0) {
    e.dot = e.vv.pairs()[rng() % e.vv.pairs().size()];  // the change that wrote it
  }
  return e;
}

Decision Mirror(Decision d) {
  if (d == Decision::kKeepLocal) return Decision::kTakeRemote;
  if (d == Decision::kTakeRemote) return Decision::kKeepLocal;
  return d;
}

TEST_CASE("Resolve: symmetric and lossless over random pairs", "[conflict]") {
  GOSSYNC_SEEDED_RNG(0xc0f1);
  int conflicts = 0, merges = 0, copies = 0, sames = 0, seen_deletes = 0, seen_edits = 0;
  for (int i = 0; i < 20000; ++i) {
    Entry a = RandomEntry(rng), b = RandomEntry(rng);
    REQUIRE(ValidateEntry(a).ok());
    REQUIRE(ValidateEntry(b).ok());
    Resolution ab = Resolve(a, b), ba = Resolve(b, a);
    INFO("a " << CanonicalEncoding(a).size() << " " << a.vv.ToString() << " b " << b.vv.ToString());
    REQUIRE(ba.decision == Mirror(ab.decision));
    REQUIRE(ab.winner);
    if (ab.decision == Decision::kSame) {
      // The same version (equal digests); each side keeps its own record.
      ++sames;
      REQUIRE(a.Digest() == b.Digest());
      REQUIRE(ab.winner == a);
      REQUIRE(ba.winner == b);
      continue;
    }
    REQUIRE(ab.winner == ba.winner);
    REQUIRE(ab.copy == ba.copy);
    REQUIRE(ValidateEntry(*ab.winner).ok());
    // The result dominates both inputs, so it propagates everywhere.
    VvOrder wa = ab.winner->vv.Compare(a.vv), wb = ab.winner->vv.Compare(b.vv);
    REQUIRE((wa == VvOrder::kGreater || wa == VvOrder::kEqual));
    REQUIRE((wb == VvOrder::kGreater || wb == VvOrder::kEqual));
    if (ab.decision == Decision::kMerge) ++merges;

    if (ab.decision == Decision::kConflict) {
      ++conflicts;
      // Lossless: every live file or symlink content survives, live or as a
      // copy, unless the other side saw it (covers its dot) and the other
      // side did not see this one's: then it was replaced or deleted there.
      auto saw = [&](const Entry& x, const Entry& y) {
        return y.has_dot() && a.vv.Compare(b.vv) == VvOrder::kConcurrent &&
               x.vv.Get(y.dot.node) >= y.dot.counter;
      };
      for (const Entry* side : {&a, &b}) {
        if (side->deleted || side->kind == EntryKind::kDirectory) continue;
        const Entry& other = side == &a ? b : a;
        const bool dir_vs_file = other.live() && other.kind == EntryKind::kDirectory;
        if (!dir_vs_file && saw(other, *side) && (other.deleted || !saw(*side, other))) {
          ++(other.deleted ? seen_deletes : seen_edits);
          REQUIRE(ab.winner->deleted == other.deleted);
          REQUIRE(ab.winner->hash == other.hash);
          REQUIRE_FALSE(ab.copy);
          continue;
        }
        bool kept =
            (ab.winner->live() && ab.winner->kind == side->kind && ab.winner->hash == side->hash) ||
            (ab.copy && ab.copy->hash == side->hash && ab.copy->kind == side->kind);
        REQUIRE(kept);
      }
    }
    if (ab.copy) {
      ++copies;
      REQUIRE(ValidateEntry(*ab.copy).ok());
      REQUIRE(IsConflictCopy(ab.copy->path));
      REQUIRE(ab.copy->path != a.path);
    }
  }
  CHECK(sames > 10);
  CHECK(conflicts > 1000);
  CHECK(merges > 100);
  CHECK(copies > 500);
  CHECK(seen_deletes > 100);
  CHECK(seen_edits > 100);
}

TEST_CASE("ConflictCopyPath: examples", "[conflict]") {
  const uint64_t t = Hlc::Pack(kNov26Ms, 3);
  CHECK(ConflictCopyPath("a/report.csv", t, "beta") ==
        "a/report.sync-conflict-20261126-101500-beta.csv");
  CHECK(ConflictCopyPath("report.csv", t, "beta") ==
        "report.sync-conflict-20261126-101500-beta.csv");
  CHECK(ConflictCopyPath("Makefile", t, "beta") == "Makefile.sync-conflict-20261126-101500-beta");
  CHECK(ConflictCopyPath("home/.bashrc", t, "n1") ==
        "home/.bashrc.sync-conflict-20261126-101500-n1");
  CHECK(ConflictCopyPath(".config.json", t, "n1") ==
        ".config.sync-conflict-20261126-101500-n1.json");
  CHECK(ConflictCopyPath("a.tar.gz", t, "n1") == "a.tar.sync-conflict-20261126-101500-n1.gz");
  CHECK(ConflictCopyPath("trailing.", t, "n1") == "trailing..sync-conflict-20261126-101500-n1");
  CHECK(ConflictCopyPath("x", 0, "n1") == "x.sync-conflict-19700101-000000-n1");
  CHECK(ConflictCopyPath("x", Hlc::Pack((1ull << 48) - 1, 0), "n1") ==
        "x.sync-conflict-99991231-235959-n1");
  CHECK(ConflictCopyPath("x", t, "Bad/Name") == "x.sync-conflict-20261126-101500-_ad__ame");
  // The fallback names when the first is taken: seconds later.
  CHECK(ConflictCopyPath("a/report.csv", t, "beta", 1) ==
        "a/report.sync-conflict-20261126-101501-beta.csv");
  CHECK(ConflictCopyPath("x", t, "n1", 60) == "x.sync-conflict-20261126-101600-n1");
  CHECK(IsConflictCopy(ConflictCopyPath("x", t, "n1", kConflictCopyFallbacks)));
}

TEST_CASE("ConflictCopyPath: long names are cut at a UTF-8 boundary to 255 bytes", "[conflict]") {
  const uint64_t t = Hlc::Pack(kNov26Ms, 0);
  std::string long_ascii(250, 'n');
  std::string p = ConflictCopyPath("d/" + long_ascii + ".txt", t, "beta");
  CHECK(BaseName(p).size() == 255);
  CHECK(ValidatePath(p).ok());
  CHECK(IsConflictCopy(p));
  CHECK(p.substr(p.size() - 4) == ".txt");

  // 'é' is two bytes: whatever the cut, no character is split.
  for (size_t odd = 0; odd < 4; ++odd) {
    std::string name(odd, 'a');
    while (name.size() + 2 <= 250) name += "\xc3\xa9";
    std::string q = ConflictCopyPath(name + ".txt", t, "beta");
    INFO(odd);
    CHECK(BaseName(q).size() <= 255);
    CHECK(BaseName(q).size() >= 254);
    CHECK(ValidatePath(q).ok());
    CHECK(IsValidUtf8(q));
  }
  // 4-byte characters, the longest node name.
  std::string emoji;
  while (emoji.size() < 252) emoji += "\xf0\x9f\x98\x80";
  std::string q = ConflictCopyPath(emoji, t, std::string(63, 'z'));
  CHECK(ValidatePath(q).ok());
  CHECK(IsConflictCopy(q));

  // An "extension" that leaves no room is taken as part of the name.
  std::string weird = "a." + std::string(252, 'e');
  std::string w = ConflictCopyPath(weird, t, "beta");
  CHECK(ValidatePath(w).ok());
  CHECK(IsConflictCopy(w));
  CHECK(w.size() == 255);

  // The whole path stays within 4096 bytes too.
  std::string deep(254, 'x');
  for (int i = 0; i < 14; ++i) deep += "/" + std::string(255, 'y');
  deep += "/" + std::string(100, 'z') + "/" + std::string(150, 'f') + ".txt";
  REQUIRE(deep.size() == 4094);
  REQUIRE(ValidatePath(deep).ok());
  std::string dp = ConflictCopyPath(deep, t, "beta");
  CHECK(dp.size() == kMaxPathBytes);
  CHECK(dp.substr(dp.size() - 4) == ".txt");
  CHECK(ValidatePath(dp).ok());
  CHECK(IsConflictCopy(dp));
}

TEST_CASE("IsConflictCopy: recognises only what ConflictCopyPath makes", "[conflict]") {
  CHECK(IsConflictCopy("a/report.sync-conflict-20261126-101500-beta.csv"));
  CHECK(IsConflictCopy("Makefile.sync-conflict-20261126-101500-beta"));
  CHECK(IsConflictCopy("x.sync-conflict-20261126-101500-web01.dc2.txt"));
  CHECK_FALSE(IsConflictCopy("a/report.csv"));
  CHECK_FALSE(IsConflictCopy("report.sync-conflict.csv"));
  CHECK_FALSE(IsConflictCopy("report.sync-conflict-2026112-101500-beta.csv"));
  CHECK_FALSE(IsConflictCopy("report.sync-conflict-20261126-101500-.csv"));
  CHECK_FALSE(IsConflictCopy("report.sync-conflict-20261126-101500-Beta"));
  CHECK_FALSE(IsConflictCopy("report.sync-conflict-2026112x-101500-beta"));
  // Only the base name counts.
  CHECK_FALSE(IsConflictCopy("x.sync-conflict-20261126-101500-beta/file"));
}

}  // namespace
}  // namespace gossync::core

TEST_CASE("ConflictOriginalPath inverts ConflictCopyPath", "[conflict]") {
  using gossync::core::ConflictCopyPath;
  using gossync::core::ConflictOriginalPath;
  uint64_t hlc = gossync::core::Hlc::Pack(1'795'000'000'000, 0);
  for (const char* p : {"a/report.csv", "notes", ".bashrc", "dir/x.tar.gz", "a/b/c.d"}) {
    INFO(p);
    CHECK(ConflictOriginalPath(ConflictCopyPath(p, hlc, "beta")) == p);
  }
}
