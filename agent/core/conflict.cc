#include "agent/core/conflict.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "agent/core/hlc.h"
#include "agent/core/path.h"

namespace gossync::core {
namespace {

constexpr std::string_view kMarker = ".sync-conflict-";

// Concurrent versions that need no copy: the same bytes with the same
// metadata, or two deletions of whatever was there.
bool SameContent(const Entry& a, const Entry& b) {
  if (a.deleted && b.deleted) return true;
  return a.kind == b.kind && a.mode == b.mode && a.hash == b.hash && a.target == b.target &&
         a.deleted == b.deleted;
}

// The total order every node applies to concurrent versions: greater HLC,
// then greater origin name, then greater digest (only reached by entries
// that differ in nothing a peer could tell apart anyway). Symmetric by
// construction, so Resolve(a, b) and Resolve(b, a) agree.
bool Beats(const Entry& a, const Entry& b) {
  if (a.hlc != b.hlc) return a.hlc > b.hlc;
  if (a.origin != b.origin) return a.origin > b.origin;
  return a.Digest() > b.Digest();
}

// "YYYYMMDD-HHMMSS" in UTC. A 48-bit millisecond clock reaches year 10889;
// the name keeps four year digits, so later times are clamped to the last
// second of 9999 (only a runaway clock gets there).
std::string Timestamp(uint64_t hlc, uint32_t later_s) {
  using namespace std::chrono;
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31 23:59:59
  int64_t secs = std::min<int64_t>(static_cast<int64_t>(Hlc::Millis(hlc) / 1000) + later_s,
                                   kMaxSeconds);
  sys_seconds tp{seconds(secs)};
  sys_days day = floor<days>(tp);
  year_month_day ymd(day);
  hh_mm_ss hms(tp - day);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d%02u%02u-%02d%02d%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// Node names are validated before they get here (ValidateEntry); this keeps
// a file name safe even if one was not: anything outside [a-z0-9._-]
// becomes '_', and at most 63 bytes are used.
std::string SafeNode(std::string_view node) {
  std::string out(node.substr(0, 63));
  for (char& c : out) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  // (Not `out = "_"`: GCC 12 -O2 warns -Wrestrict on it, a false positive.)
  return out.empty() ? std::string(1, '_') : out;
}

// The longest prefix of `s` of at most `max` bytes that ends on a UTF-8
// character boundary.
std::string_view Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<uint8_t>(s[cut]) & 0xc0) == 0x80) --cut;
  return s.substr(0, cut);
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Resolution Resolve(const Entry& local, const Entry& remote) {
  GOSSYNC_CHECK(local.path == remote.path);
  Resolution r;
  const VvOrder order = local.vv.Compare(remote.vv);
  switch (order) {
    case VvOrder::kEqual:
      if (local.Digest() == remote.Digest()) {
        r.decision = Decision::kSame;
        r.winner = local;
        return r;
      }
      // Equal histories with different versions: a node reused counters
      // (its index restored from a backup, say). Treating them as
      // concurrent still converges, since the choice is deterministic.
      break;
    case VvOrder::kGreater:
      r.decision = Decision::kKeepLocal;
      r.winner = local;
      return r;
    case VvOrder::kLess:
      r.decision = Decision::kTakeRemote;
      r.winner = remote;
      return r;
    case VvOrder::kConcurrent:
      break;
  }

  VersionVector merged = local.vv;
  merged.Merge(remote.vv);

  if (SameContent(local, remote)) {
    // Which side's metadata (mtime, hlc, origin) survives must not depend on
    // which side is local, or the two nodes would end with different digests.
    r.decision = Decision::kMerge;
    r.winner = Beats(local, remote) ? local : remote;
    r.winner->vv = std::move(merged);
    return r;
  }

  // Whether x's history holds the change that made y's content (y's dot):
  // then x's node saw that content and replaced or deleted it, or a merge
  // on the way kept it as a conflict copy.
  auto saw = [&](const Entry& x, const Entry& y) {
    return order == VvOrder::kConcurrent && y.has_dot() && x.vv.Get(y.dot.node) >= y.dot.counter;
  };
  bool local_wins;
  bool superseded = false;  // the loser's content was seen and replaced: no copy
  if (local.live() != remote.live()) {
    // A write is never lost to a delete: the live version wins, unless the
    // delete saw this very content and the two are concurrent only because
    // a merge added history to one of them (the live version won a conflict
    // with another write or delete the tombstone did not see). Then the
    // content was deleted on purpose. Equal VVs (a catch-up tombstone, made
    // from the live entry's own history) keep the plain rule.
    const Entry& live = local.live() ? local : remote;
    const Entry& tomb = local.live() ? remote : local;
    superseded = saw(tomb, live);
    local_wins = local.live() != superseded;
  } else if ((local.kind == EntryKind::kDirectory) != (remote.kind == EntryKind::kDirectory)) {
    local_wins = local.kind == EntryKind::kDirectory;  // its children stay where they are
  } else if (saw(local, remote) != saw(remote, local)) {
    // One side was written after seeing the other's content (their VVs are
    // concurrent only through a merge): it wins whatever the clocks say, and
    // the content it replaced needs no copy.
    local_wins = saw(local, remote);
    superseded = true;
  } else {
    local_wins = Beats(local, remote);
  }
  const Entry& winner = local_wins ? local : remote;
  const Entry& loser = local_wins ? remote : local;

  r.decision = Decision::kConflict;
  r.winner = winner;
  r.winner->vv = std::move(merged);
  if (loser.live() && loser.kind != EntryKind::kDirectory && !superseded) {
    r.copy = loser;
    r.copy->path = ConflictCopyPath(loser.path, loser.hlc, loser.origin);
  }
  return r;
}

std::string ConflictCopyPath(std::string_view path, uint64_t hlc, std::string_view node,
                             uint32_t later_s) {
  const std::string_view dir = ParentPath(path);
  const std::string_view base = BaseName(path);
  const std::string core = std::string(kMarker) + Timestamp(hlc, later_s) + "-" + SafeNode(node);

  // Room for the new component: 255 bytes, and the whole path within 4096.
  const size_t dir_bytes = dir.empty() ? 0 : dir.size() + 1;
  const size_t room =
      std::min(kMaxComponentBytes, kMaxPathBytes > dir_bytes ? kMaxPathBytes - dir_bytes : 0);

  std::string_view name = base;
  std::string_view ext;
  const size_t dot = base.rfind('.');
  if (dot != std::string_view::npos && dot > 0 && dot + 1 < base.size()) {
    name = base.substr(0, dot);
    ext = base.substr(dot + 1);
    // An extension too long to keep beside a one-byte name is not treated as
    // one: the whole base name is the NAME part and gets shortened instead.
    if (core.size() + 1 + ext.size() + 1 > room) {
      name = base;
      ext = {};
    }
  }
  const size_t suffix = core.size() + (ext.empty() ? 0 : 1 + ext.size());
  const size_t name_room = room > suffix ? room - suffix : 0;

  std::string out;
  out.reserve(dir_bytes + room);
  if (!dir.empty()) {
    out.append(dir);
    out += '/';
  }
  out.append(Utf8Prefix(name, name_room));
  out.append(core);
  if (!ext.empty()) {
    out += '.';
    out.append(ext);
  }
  return out;
}

bool IsConflictCopy(std::string_view path) {
  const std::string_view base = BaseName(path);
  const size_t at = base.rfind(kMarker);
  if (at == std::string_view::npos) return false;
  std::string_view rest = base.substr(at + kMarker.size());
  // YYYYMMDD-HHMMSS-
  if (rest.size() < 16 || !AllDigits(rest.substr(0, 8)) || rest[8] != '-' ||
      !AllDigits(rest.substr(9, 6)) || rest[15] != '-') {
    return false;
  }
  rest.remove_prefix(16);
  // NODE or NODE.EXT; node names may hold dots themselves, so any split
  // whose left side is a node name will do.
  if (IsValidNodeName(rest)) return true;
  for (size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.', dot + 1)) {
    if (dot + 1 < rest.size() && IsValidNodeName(rest.substr(0, dot))) return true;
  }
  return false;
}

std::string ConflictOriginalPath(std::string_view path) {
  const std::string_view base = BaseName(path);
  const std::string_view dir = path.substr(0, path.size() - base.size());
  const size_t at = base.rfind(kMarker);
  if (at == std::string_view::npos) return std::string(path);
  std::string_view rest = base.substr(at + kMarker.size());
  rest.remove_prefix(std::min<size_t>(16, rest.size()));  // YYYYMMDD-HHMMSS-
  std::string out(dir);
  out.append(base.substr(0, at));
  size_t dot = rest.rfind('.');
  if (dot != std::string_view::npos && dot + 1 < rest.size() &&
      IsValidNodeName(rest.substr(0, dot))) {
    out += '.';
    out.append(rest.substr(dot + 1));
  }
  return out;
}

}  // namespace gossync::core
