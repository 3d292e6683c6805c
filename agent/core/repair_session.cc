#include "agent/core/repair_session.h"

#include <algorithm>

#include "agent/core/conflict.h"
#include "agent/core/path.h"
#include "agent/core/repair_session_impl.h"

namespace gossync::core {
namespace {

// An ENTRIES message stays well under the 4 MiB frame: at most 1,024
// entries and about this many bytes by the estimate below.
constexpr size_t kEntriesMessageBytes = 1 << 20;

size_t EstimatedBytes(const Entry& e) {
  return 96 + e.path.size() + e.target.size() + e.origin.size() + 24 * e.vv.pairs().size();
}

std::array<ShortDigest, 16> Short(const std::array<Hash256, 16>& d) {
  std::array<ShortDigest, 16> out{};
  for (size_t i = 0; i < 16; ++i) out[i] = Truncate(d[i]);
  return out;
}

// A peer's path in a log line or an ABORT reason: at most 80 bytes, control
// and non-ASCII bytes escaped, so that hostile bytes cannot forge log lines.
std::string Printable(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > 80) out += "...";
  return out + "'";
}

bool SameVersionExceptVv(const Entry& a, const Entry& b) {
  Entry x = a;
  x.vv = b.vv;
  return x == b;
}

}  // namespace

RepairSession::Impl::Impl(RepairOptions o, DatasetView* v)
    : opt(std::move(o)), view(v), depth(v->depth()), shape(v->depth()) {
  GOSSYNC_CHECK(opt.block_size > 0);
  GOSSYNC_CHECK(opt.max_in_flight_blocks > 0 && opt.max_in_flight_bytes > 0 &&
                opt.max_active_pulls > 0 &&
                opt.max_active_large_pulls > 0);
  dry_run = opt.dry_run;
}

template <typename F>
RepairSession::Actions RepairSession::Impl::Run(int64_t now_ms, F&& body) {
  GOSSYNC_CHECK(phase != Phase::kNew);  // Start first
  Actions actions;
  if (ended()) return actions;
  out = &actions;
  body(now_ms);
  Post();
  out = nullptr;
  return actions;
}

bool RepairSession::Impl::Idle() const {
  return outgoing.empty() && ops.empty() && queued_small.empty() && queued_large.empty() &&
         active.empty() && out_reqs.empty() && in_reqs.empty();
}

void RepairSession::Impl::Send(RepairMessage m) {
  // Answers to the peer's requests give it nothing new to do, so they do
  // not keep the initiator from closing after FIN_ACK; anything else might.
  switch (static_cast<RepairMessageType>(m.index())) {
    case RepairMessageType::kFin:
    case RepairMessageType::kFinAck:
    case RepairMessageType::kBlock:
    case RepairMessageType::kBlockList:
    case RepairMessageType::kReqError:
    case RepairMessageType::kAbort:
      break;
    default:
      dirty_since_fin = true;
  }
  ++stats.messages_sent;
  Emit(repair::Send{std::move(m)});
}

void RepairSession::Impl::Fail(std::string_view counter, std::string reason, bool notify_peer) {
  if (ended()) return;
  if (notify_peer) {
    std::string wire = reason.substr(0, kMaxReasonBytes);
    Send(AbortMsg{std::move(wire)});
  }
  phase = Phase::kDone;
  Emit(repair::Abort{std::string(counter), std::move(reason), stats});
}

void RepairSession::Impl::Finish() {
  phase = Phase::kDone;
  Emit(repair::Finished{stats});
}

void RepairSession::Impl::LocalError(const Status& s) {
  Fail("local_error", "local index: " + s.ToString());
}

// After every input: what it queued goes out, pulls advance, and the
// termination handshake moves on if this side has nothing left to do.
void RepairSession::Impl::Post() {
  if (ended()) return;
  FlushEntries();
  PumpPulls();
  if (ended()) return;
  if (opt.initiator) {
    if (peer_hello && !fin_outstanding && Idle()) {
      Send(FinMsg{});
      fin_outstanding = true;
      dirty_since_fin = false;
    }
  } else if (fin_pending && Idle()) {
    Send(FinAckMsg{});
    fin_pending = false;
    acked = true;
  }
}

void RepairSession::Impl::Dispatch(RepairMessage m) {
  acked = false;  // the initiator goes on after our FIN_ACK
  const auto type = static_cast<RepairMessageType>(m.index());
  if (!peer_hello && type != RepairMessageType::kHello && type != RepairMessageType::kAbort) {
    Fail("protocol", std::string("expected HELLO first, got ") + MessageName(m));
    return;
  }
  if (std::holds_alternative<UnknownMsg>(m)) {
    ++stats.unknown_messages;  // a newer peer's; skipped
    return;
  }
  switch (type) {
    case RepairMessageType::kHello:
      return OnHello(std::get<HelloMsg>(m));
    case RepairMessageType::kNodes:
      return OnNodes(std::get<NodesMsg>(m));
    case RepairMessageType::kLeaves:
      return OnLeaves(std::get<LeavesMsg>(m));
    case RepairMessageType::kEntries:
      return OnEntries(std::get<EntriesMsg>(m));
    case RepairMessageType::kWant:
      return OnWant(std::get<WantMsg>(m));
    case RepairMessageType::kBlockListReq:
      return OnBlockListReq(std::get<BlockListReqMsg>(m));
    case RepairMessageType::kBlockList:
      return OnBlockList(std::get<BlockListMsg>(m));
    case RepairMessageType::kBlockReq:
      return OnBlockReq(std::get<BlockReqMsg>(m));
    case RepairMessageType::kBlock:
      return OnBlock(std::get<BlockMsg>(m));
    case RepairMessageType::kReqError:
      return OnReqError(std::get<ReqErrorMsg>(m));
    case RepairMessageType::kFin:
      return OnFin();
    case RepairMessageType::kFinAck:
      return OnFinAck();
    case RepairMessageType::kAbort:
      return Fail("peer_abort", "the peer aborted: " + Printable(std::get<AbortMsg>(m).reason),
                  false);
  }
}

// ---- Hello and descent ----

void RepairSession::Impl::OnHello(HelloMsg& m) {
  if (peer_hello) return Fail("protocol", "a second HELLO");
  if (m.version != kRepairProtocolVersion) {
    return Fail("version_mismatch", "the peer speaks repair protocol version " +
                                        std::to_string(m.version) + ", we speak " +
                                        std::to_string(kRepairProtocolVersion));
  }
  if (m.depth != depth) {
    return Fail("depth_mismatch", "the peer's tree depth is " + std::to_string(m.depth) +
                                      ", ours " + std::to_string(depth));
  }
  if (!IsValidNodeName(m.name)) {
    return Fail("name_mismatch", "HELLO name " + Printable(m.name) + " is not a node name");
  }
  if (!opt.peer_name.empty() && m.name != opt.peer_name) {
    return Fail("name_mismatch", "HELLO name " + Printable(m.name) +
                                     " is not the certificate's name " + Printable(opt.peer_name));
  }
  if (m.name == opt.local_name) return Fail("name_mismatch", "the peer has our own name");
  if (m.flags & kHelloDryRun) dry_run = true;
  peer_hello = m;

  const Hash256 root = view->Root();
  if (root == m.root) return;
  if (IsZero(m.root)) {
    StreamUnder(0, 0);  // an empty peer takes everything without a descent
    return;
  }
  if (opt.initiator && !nodes1_sent && !IsZero(root)) SendNodesRoot();
}

void RepairSession::Impl::SendNodesRoot() {
  nodes1_sent = true;
  stats.descent_levels = std::max(stats.descent_levels, 1);
  Send(NodesMsg{1, {NodeItem{0, Short(view->ChildDigests(0, 0))}}});
}

void RepairSession::Impl::OnNodes(const NodesMsg& m) {
  const int level = m.level;
  if (level < 1 || level > depth) {
    return Fail("bad_node",
                "NODES level " + std::to_string(level) + " is outside 1.." + std::to_string(depth));
  }
  if (m.items.size() > kMaxNodesItems) {
    return Fail("too_many_items", "NODES with " + std::to_string(m.items.size()) + " items");
  }
  for (const NodeItem& it : m.items) {
    if (!shape.IsValidNode(level - 1, it.prefix)) {
      return Fail("bad_node", "NODES item " + std::to_string(it.prefix) +
                                  " is not a node of level " + std::to_string(level - 1));
    }
  }
  stats.descent_levels = std::max(stats.descent_levels, level);
  // An empty side was seen in the HELLOs: the other side streams everything.
  if (IsZero(my_hello_root) || IsZero(peer_hello->root)) return;

  std::vector<NodeItem> next;
  std::vector<LeafItem> leaves;
  for (const NodeItem& it : m.items) {
    const std::array<ShortDigest, 16> mine = Short(view->ChildDigests(level - 1, it.prefix));
    for (uint32_t i = 0; i < 16; ++i) {
      if (mine[i] == it.digests[i]) continue;
      const uint32_t child = it.prefix * 16 + i;
      if (it.digests[i] == 0) {
        StreamUnder(level, child);  // the peer has nothing there
      } else if (level < depth) {
        next.push_back(NodeItem{child, Short(view->ChildDigests(level, child))});
      } else {
        auto keys = view->ListBucket(child);
        if (!keys.ok()) return LocalError(keys.status());
        if (keys->size() > kMaxLeafPairs) {
          return Fail("bucket_too_large", "bucket " + std::to_string(child) + " holds " +
                                              std::to_string(keys->size()) +
                                              " entries; raise the tree depth");
        }
        leaves.push_back(LeafItem{child, std::move(keys).value()});
      }
      if (ended()) return;
    }
  }
  for (size_t i = 0; i < next.size(); i += kMaxNodesItems) {
    const size_t end = std::min(next.size(), i + kMaxNodesItems);
    stats.descent_levels = std::max(stats.descent_levels, level + 1);
    Send(NodesMsg{static_cast<uint8_t>(level + 1),
                  std::vector<NodeItem>(next.begin() + static_cast<std::ptrdiff_t>(i),
                                        next.begin() + static_cast<std::ptrdiff_t>(end))});
  }
  if (!leaves.empty()) stats.descent_levels = depth + 1;
  LeavesMsg msg;
  size_t pairs = 0;
  for (LeafItem& leaf : leaves) {
    if (msg.items.size() == kMaxLeavesItems || pairs + leaf.keys.size() > kMaxLeafPairs) {
      Send(std::move(msg));
      msg = {};
      pairs = 0;
    }
    pairs += leaf.keys.size();
    msg.items.push_back(std::move(leaf));
  }
  if (!msg.items.empty()) Send(std::move(msg));
}

void RepairSession::Impl::OnLeaves(const LeavesMsg& m) {
  if (m.items.size() > kMaxLeavesItems) {
    return Fail("too_many_items", "LEAVES with " + std::to_string(m.items.size()) + " buckets");
  }
  size_t pairs = 0;
  for (const LeafItem& it : m.items) {
    if (!shape.IsValidNode(depth, it.bucket)) {
      return Fail("bad_node", "LEAVES bucket " + std::to_string(it.bucket) + " is out of range");
    }
    pairs += it.keys.size();
    for (const KeyDigest& kd : it.keys) {
      if (BucketOfKey(kd.key, depth) != it.bucket) {
        return Fail("bad_node", "LEAVES key of bucket " +
                                    std::to_string(BucketOfKey(kd.key, depth)) +
                                    " listed under bucket " + std::to_string(it.bucket));
      }
    }
  }
  if (pairs > kMaxLeafPairs) {
    return Fail("too_many_items", "LEAVES with " + std::to_string(pairs) + " keys");
  }
  stats.descent_levels = depth + 1;
  if (IsZero(my_hello_root) || IsZero(peer_hello->root)) return;

  std::vector<uint64_t> want;
  for (const LeafItem& it : m.items) {
    auto mine_or = view->ListBucket(it.bucket);
    if (!mine_or.ok()) return LocalError(mine_or.status());
    std::vector<KeyDigest>& mine = *mine_or;
    std::vector<KeyDigest> theirs = it.keys;
    std::sort(mine.begin(), mine.end());
    std::sort(theirs.begin(), theirs.end());
    // Walk both lists key by key; a key may (with 2^-64 odds) hold several paths.
    std::vector<uint64_t> send;
    std::unordered_set<uint64_t> only_mine;
    size_t a = 0, b = 0;
    while (a < mine.size() || b < theirs.size()) {
      uint64_t key = a < mine.size() ? mine[a].key : theirs[b].key;
      if (b < theirs.size()) key = std::min(key, theirs[b].key);
      size_t a_end = a, b_end = b;
      while (a_end < mine.size() && mine[a_end].key == key) ++a_end;
      while (b_end < theirs.size() && theirs[b_end].key == key) ++b_end;
      const bool same = std::equal(mine.begin() + static_cast<std::ptrdiff_t>(a),
                                   mine.begin() + static_cast<std::ptrdiff_t>(a_end),
                                   theirs.begin() + static_cast<std::ptrdiff_t>(b),
                                   theirs.begin() + static_cast<std::ptrdiff_t>(b_end));
      if (!same) {
        if (a_end > a) {
          send.push_back(key);
          if (b_end == b) only_mine.insert(key);
        } else {
          want.push_back(key);
        }
      }
      a = a_end;
      b = b_end;
    }
    if (send.empty()) continue;
    auto entries = view->EntriesByKeys(it.bucket, send);
    if (!entries.ok()) return LocalError(entries.status());
    for (const Entry& e : *entries) QueueEntry(e, only_mine.count(PathKey(e.path)) > 0);
  }
  for (size_t i = 0; i < want.size(); i += kMaxWantKeys) {
    const size_t end = std::min(want.size(), i + kMaxWantKeys);
    Send(WantMsg{std::vector<uint64_t>(want.begin() + static_cast<std::ptrdiff_t>(i),
                                       want.begin() + static_cast<std::ptrdiff_t>(end))});
  }
}

void RepairSession::Impl::OnWant(const WantMsg& m) {
  if (m.keys.size() > kMaxWantKeys) {
    return Fail("too_many_items", "WANT with " + std::to_string(m.keys.size()) + " keys");
  }
  std::vector<uint64_t> keys = m.keys;
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (size_t i = 0; i < keys.size();) {
    const uint32_t bucket = BucketOfKey(keys[i], depth);
    size_t end = i;
    while (end < keys.size() && BucketOfKey(keys[end], depth) == bucket) ++end;
    auto entries = view->EntriesByKeys(bucket, std::span<const uint64_t>(keys.data() + i, end - i));
    if (!entries.ok()) return LocalError(entries.status());
    for (const Entry& e : *entries) QueueEntry(e, true);
    i = end;
  }
}

void RepairSession::Impl::StreamUnder(int level, uint32_t prefix) {
  // Not remembered: the peer has nothing there to send back, and an initial
  // sync would otherwise keep every path of the dataset in `sent`.
  // Encoded as it goes: `outgoing` would otherwise hold every entry of the
  // dataset at once (an initial sync's peak memory), before the frames too.
  Status s = view->ForEachUnder(level, prefix, [this](const Entry& e) {
    QueueEntry(e, true, false);
    if (outgoing.size() >= kMaxEntriesItems) FlushEntries();
  });
  if (!s.ok()) LocalError(s);
}

void RepairSession::Impl::QueueEntry(const Entry& e, bool peer_lacks, bool remember) {
  if (peer_lacks && DisposeUnsent(e)) return;
  if (dry_run && peer_lacks) Record(stats.diff.push, e.path, e, std::nullopt);
  if (!remember) {
    outgoing.push_back(e);
    return;
  }
  const Hash256 digest = e.Digest();
  auto [it, inserted] = sent.try_emplace(e.path, digest);
  if (!inserted) {
    if (it->second == digest) return;  // already sent this version
    it->second = digest;
  }
  outgoing.push_back(e);
}

void RepairSession::Impl::FlushEntries() {
  EntriesMsg msg;
  size_t bytes = 0;
  for (Entry& e : outgoing) {
    const size_t n = EstimatedBytes(e);
    if (msg.entries.size() == kMaxEntriesItems || (bytes + n > kEntriesMessageBytes && bytes)) {
      stats.entries_sent += msg.entries.size();
      Send(std::move(msg));
      msg = {};
      bytes = 0;
    }
    bytes += n;
    msg.entries.push_back(std::move(e));
  }
  outgoing.clear();
  if (!msg.entries.empty()) {
    stats.entries_sent += msg.entries.size();
    Send(std::move(msg));
  }
}

// ---- Decisions ----

void RepairSession::Impl::OnEntries(EntriesMsg& m) {
  if (m.entries.size() > kMaxEntriesItems) {
    return Fail("too_many_items", "ENTRIES with " + std::to_string(m.entries.size()) + " entries");
  }
  // All of a message is checked before any of it is acted on.
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (Status s = ValidatePath(e.path); !s.ok()) {
      return Fail("bad_path", "ENTRIES[" + std::to_string(i) + "] path " + Printable(e.path) +
                                  ": " + s.message());
    }
    if (Status s = ValidateEntry(e); !s.ok()) {
      return Fail("bad_entry",
                  "ENTRIES[" + std::to_string(i) + "] " + Printable(e.path) + ": " + s.message());
    }
  }
  stats.entries_received += m.entries.size();
  for (const Entry& e : m.entries) {
    Decide(e, e.path);
    if (ended()) return;
  }
}

void RepairSession::Impl::Record(std::vector<DiffItem>& list, const std::string& path,
                                 const std::optional<Entry>& local,
                                 const std::optional<Entry>& remote) {
  if (diffed.insert(path).second) list.push_back(DiffItem{path, local, remote});
}

void RepairSession::Impl::Decide(const Entry& remote, const std::string& source) {
  if (busy.count(remote.path)) {
    ++stats.deferred;  // being applied; the next session compares again
    return;
  }
  auto got = view->Get(remote.path);
  if (!got.ok()) return LocalError(got.status());
  const std::optional<Entry>& local = *got;
  if (!local) {
    if (IgnoreRemote(remote)) {
      ++stats.stale_ignored;
      return;
    }
    if (dry_run) return Record(stats.diff.pull, remote.path, std::nullopt, remote);
    return Act(remote, source, std::nullopt);
  }
  const Resolution r = Resolve(*local, remote);
  if (r.decision == Decision::kSame) return;
  // The peer needs our version to reach the same decision (newer or
  // concurrent); in a dry run it needs it to report the difference at all.
  if (dry_run || r.decision != Decision::kTakeRemote) QueueEntry(*local, false);
  switch (r.decision) {
    case Decision::kSame:
      return;
    case Decision::kKeepLocal:
      if (dry_run) Record(stats.diff.push, remote.path, local, remote);
      return;
    case Decision::kTakeRemote:
      if (dry_run) return Record(stats.diff.pull, remote.path, local, remote);
      return Act(remote, source, local);
    case Decision::kMerge:
      ++stats.merges;
      if (dry_run) return Record(stats.diff.merge, remote.path, local, remote);
      if (r.winner->Digest() != local->Digest()) ApplyMeta(*r.winner, local);
      return;
    case Decision::kConflict:
      ++stats.conflicts;
      if (dry_run) return Record(stats.diff.conflict, remote.path, local, remote);
      return Conflict(*local, r, source);
  }
}

void RepairSession::Impl::Conflict(const Entry& local, const Resolution& r,
                                   const std::string& source) {
  const Entry& winner = *r.winner;
  const bool local_wins = SameVersionExceptVv(winner, local);
  // The winner carries the merged history, which claims the loser as seen:
  // it is applied only once the loser's content is safe as the copy, or a
  // session cut in between would lose it for good.
  auto apply_winner = [&] {
    if (!local_wins) return Act(winner, source, local);
    if (winner.Digest() != local.Digest()) ApplyMeta(winner, local);  // ours, merged history
  };
  if (!r.copy) return apply_winner();  // the loser leaves nothing to keep
  // The copy's name, or a fallback when another version holds it: a copy
  // found already made under one of them settles it.
  Entry copy = *r.copy;
  for (uint32_t later = 0;; ++later) {
    if (later > kConflictCopyFallbacks) {
      ++stats.skipped;  // every name is taken: this path waits (see conflict.h)
      return;
    }
    if (later > 0) copy.path = ConflictCopyPath(local.path, copy.hlc, copy.origin, later);
    if (!ValidatePath(copy.path).ok()) continue;
    auto existing = view->Get(copy.path);
    if (!existing.ok()) return LocalError(existing.status());
    if (!*existing) break;
    if ((*existing)->Digest() == copy.Digest()) return apply_winner();  // made before
  }
  Followup then{winner, source, local};
  if (busy.count(copy.path)) {
    if (FollowPending(copy, then)) {
      busy.insert(local.path);
    } else {
      ++stats.deferred;
    }
    return;
  }
  busy.insert(local.path);
  if (copy.kind != EntryKind::kFile) {
    return ApplyMeta(copy, std::nullopt, std::move(then));  // a symlink: the entry is all of it
  }
  if (local_wins) return EnqueuePull(copy, source, std::nullopt, std::move(then), copy.path);
  // Our content loses: copy it aside first (the peer may fetch it from there).
  const uint64_t op = next_op++;
  busy.insert(copy.path);
  copies[{local.path, local.hash}] = copy.path;
  ops[op] = LocalOp{copy.path, std::move(then), copy.Digest()};
  Emit(repair::MakeConflictCopy{op, local.path, copy, local});
}

void RepairSession::Impl::Act(const Entry& target, const std::string& source,
                              const std::optional<Entry>& expected) {
  busy.insert(target.path);
  if (target.live() && target.kind == EntryKind::kFile) {
    const bool have_content = expected && expected->live() && expected->kind == EntryKind::kFile &&
                              expected->hash == target.hash;
    if (!have_content) return EnqueuePull(target, source, expected);
  }
  ApplyMeta(target, expected);
}

void RepairSession::Impl::ApplyMeta(const Entry& target, const std::optional<Entry>& expected,
                                    std::optional<Followup> then) {
  const uint64_t op = next_op++;
  busy.insert(target.path);
  ops[op] = LocalOp{target.path, std::move(then), target.Digest()};
  Emit(repair::ApplyMeta{op, target, expected});
}

bool RepairSession::Impl::FollowPending(const Entry& e, Followup& then) {
  const Hash256 digest = e.Digest();
  for (auto& [op, o] : ops) {
    if (o.path == e.path && o.digest == digest && !o.then && !o.purge) {
      o.then = std::move(then);
      return true;
    }
  }
  auto follow = [&](Pull& p) {
    if (p.entry.path != e.path || p.entry.Digest() != digest || p.then) return false;
    p.then = std::make_unique<Followup>(std::move(then));
    return true;
  };
  for (auto& [op, p] : active) {
    if (follow(p)) return true;
  }
  for (std::deque<Pull>* q : {&queued_small, &queued_large}) {
    for (Pull& p : *q) {
      if (follow(p)) return true;
    }
  }
  return false;
}

// ---- Termination ----

void RepairSession::Impl::OnFin() {
  if (opt.initiator) return Fail("protocol", "FIN from the responder");
  fin_pending = true;  // answered by Post() once we are idle
}

void RepairSession::Impl::OnFinAck() {
  if (!opt.initiator || !fin_outstanding) return Fail("protocol", "unexpected FIN_ACK");
  fin_outstanding = false;
  // Both sides idle and nothing sent since FIN: nothing is in flight either
  // way. Otherwise Post() sends FIN again once we are idle.
  if (Idle() && !dirty_since_fin) Finish();
}

// ---- The public face ----

RepairSession::RepairSession(RepairOptions options, DatasetView* view)
    : impl_(std::make_unique<Impl>(std::move(options), view)) {}

RepairSession::~RepairSession() = default;

RepairSession::Actions RepairSession::Start(int64_t now_ms) {
  Impl& s = *impl_;
  GOSSYNC_CHECK(s.phase == Impl::Phase::kNew);
  Actions actions;
  s.out = &actions;
  s.phase = Impl::Phase::kRunning;
  s.start_ms = s.last_recv_ms = now_ms;
  s.my_hello_root = s.view->Root();
  HelloMsg hello;
  hello.name = s.opt.local_name;
  hello.depth = static_cast<uint8_t>(s.depth);
  hello.root = s.my_hello_root;
  hello.entries = s.view->EntryCount();
  hello.hlc = s.opt.hlc;
  hello.flags = (s.opt.dry_run ? kHelloDryRun : 0) | HelloFlagsFor(s.opt.sync_mode);
  s.Send(std::move(hello));
  // The descent starts with the HELLO, saving a round trip, unless gossip
  // says the roots are equal or the peer is empty (then it streams).
  if (s.opt.initiator && !IsZero(s.my_hello_root)) {
    const bool skip =
        s.opt.peer_root && (*s.opt.peer_root == s.my_hello_root || IsZero(*s.opt.peer_root));
    if (!skip) s.SendNodesRoot();
  }
  s.Post();
  s.out = nullptr;
  return actions;
}

RepairSession::Actions RepairSession::OnMessage(int64_t now_ms, RepairMessage message) {
  return impl_->Run(now_ms, [&](int64_t now) {
    impl_->last_recv_ms = now;
    ++impl_->stats.messages_received;
    impl_->Dispatch(std::move(message));
  });
}

RepairSession::Actions RepairSession::OnProtocolError(int64_t now_ms, std::string_view counter,
                                                      std::string_view reason) {
  return impl_->Run(now_ms, [&](int64_t) { impl_->Fail(counter, std::string(reason)); });
}

RepairSession::Actions RepairSession::OnPeerClosed(int64_t now_ms) {
  return impl_->Run(now_ms, [&](int64_t) {
    Impl& s = *impl_;
    if (!s.opt.initiator && s.acked && s.Idle()) {
      s.Finish();  // the initiator closed after our FIN_ACK
    } else {
      s.Fail("disconnected", "the peer closed the connection mid-session", false);
    }
  });
}

RepairSession::Actions RepairSession::OnTick(int64_t now_ms) {
  return impl_->Run(now_ms, [&](int64_t now) {
    Impl& s = *impl_;
    if (now - s.last_recv_ms > s.opt.idle_timeout_ms) {
      s.Fail("idle_timeout",
             "no frame from the peer for " + std::to_string((now - s.last_recv_ms) / 1000) + " s");
    } else if (now - s.start_ms > s.opt.session_timeout_ms) {
      s.Fail("session_timeout", "the session ran longer than " +
                                    std::to_string(s.opt.session_timeout_ms / 1000) + " s");
    }
  });
}

RepairSession::Actions RepairSession::OnPullReady(int64_t now_ms, uint64_t op,
                                                  Result<std::vector<bool>> have) {
  return impl_->Run(now_ms, [&](int64_t) { impl_->PullReady(op, std::move(have)); });
}

RepairSession::Actions RepairSession::OnCommitted(int64_t now_ms, uint64_t op, Status status) {
  return impl_->Run(now_ms, [&](int64_t) { impl_->Committed(op, status); });
}

RepairSession::Actions RepairSession::OnApplied(int64_t now_ms, uint64_t op, Status status) {
  return impl_->Run(now_ms, [&](int64_t) {
    Impl& s = *impl_;
    auto it = s.ops.find(op);
    GOSSYNC_CHECK(it != s.ops.end());  // one completion per ApplyMeta / MakeConflictCopy
    Impl::LocalOp o = std::move(it->second);
    s.ops.erase(it);
    s.busy.erase(o.path);
    if (!status.ok()) {
      // A purge that cannot happen yet (a directory still on disk) is left
      // to the purge job; it skipped nothing the peer sent.
      if (!o.purge) ++s.stats.skipped;
      if (!o.purge && status.code() != Code::kAborted) {
        s.stats.last_local_error = o.path + ": " + status.message();
      }
      if (o.then) s.busy.erase(o.then->target.path);
      return;
    }
    if (o.purge) {
      ++s.stats.tombstones_purged;
      return;
    }
    ++s.stats.entries_applied;
    if (o.purge_after) s.PurgeLocal(*o.purge_after);
    if (o.then) s.Act(o.then->target, o.then->source, o.then->expected);
  });
}

RepairSession::Actions RepairSession::OnBlockListRead(int64_t now_ms, uint32_t req,
                                                      Result<BlockListInfo> list) {
  return impl_->Run(now_ms, [&](int64_t) { impl_->BlockListRead(req, std::move(list)); });
}

RepairSession::Actions RepairSession::OnBlocksRead(
    int64_t now_ms, uint32_t req, Result<std::vector<std::vector<uint8_t>>> blocks) {
  return impl_->Run(now_ms, [&](int64_t) { impl_->BlocksRead(req, std::move(blocks)); });
}

bool RepairSession::done() const { return impl_->ended(); }
bool RepairSession::dry_run() const { return impl_->dry_run; }
const SessionStats& RepairSession::stats() const { return impl_->stats; }
const std::optional<HelloMsg>& RepairSession::peer_hello() const { return impl_->peer_hello; }

}  // namespace gossync::core
