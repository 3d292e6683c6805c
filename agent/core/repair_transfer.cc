// Content transfer of a repair session (PROTOCOL.md step 5): the pulling
// side's block requests, verification and writes, and the serving side's
// reads. Members of RepairSession::Impl; see repair_session_impl.h.
#include <algorithm>

#include "agent/core/path.h"
#include "agent/core/repair_session_impl.h"

namespace gossync::core {
namespace {

// A file's window is topped up only when this many blocks (or all that are
// left) can be asked for at once, so that a large file is not requested one
// block per message.
constexpr uint64_t kMinBatch = 16;

// The block bytes one BLOCK_REQ asks for, at most (but kMinBatch blocks
// always may go in one): 16 blocks of the default size.
constexpr uint64_t kMaxReqBytes = uint64_t{2} << 20;

// How many blocks of `block_size` hold `size` bytes.
uint64_t BlockCount(uint64_t size, uint32_t block_size) {
  return size / block_size + (size % block_size != 0 ? 1 : 0);
}

// The bytes of block `i` of a file of `size` bytes.
uint64_t BlockLen(uint64_t size, uint32_t block_size, uint64_t i) {
  const uint64_t off = i * block_size;
  return off >= size ? 0 : std::min<uint64_t>(block_size, size - off);
}

ReqErrorCode CodeFor(const Status& s) {
  switch (s.code()) {
    case Code::kNotFound:
      return ReqErrorCode::kNotFound;
    case Code::kAborted:
      return ReqErrorCode::kChanged;
    default:
      return ReqErrorCode::kIoError;
  }
}

}  // namespace

// ---- Pulling ----

void RepairSession::Impl::EnqueuePull(const Entry& target, const std::string& source,
                                      const std::optional<Entry>& expected,
                                      std::optional<Followup> then, std::string alt_source) {
  Pull p;
  if (then) p.then = std::make_unique<Followup>(std::move(*then));
  p.alt_source = std::move(alt_source);
  p.op = next_op++;
  p.entry = target;
  if (source != target.path) p.source = source;
  if (expected) p.expected = std::make_unique<Entry>(*expected);
  p.blocks = BlockCount(target.size, opt.block_size);
  if (p.blocks > kMaxBlocksPerFile) {
    ++stats.skipped;  // too large to move by this protocol
    busy.erase(target.path);
    if (p.then) busy.erase(p.then->target.path);
    return;
  }
  // Memory stays bounded however many entries the peer offers (without this,
  // 204,800 offered files took the agent 209 MiB above its baseline).
  if (queued_small.size() + queued_large.size() >= opt.max_queued_pulls) {
    ++stats.deferred;
    busy.erase(target.path);
    if (p.then) busy.erase(p.then->target.path);
    return;
  }
  p.large = p.blocks > 1;
  busy.insert(target.path);
  (p.large ? queued_large : queued_small).push_back(std::move(p));
}

void RepairSession::Impl::PumpPulls() {
  while (!queued_small.empty() && active.size() < opt.max_active_pulls) {
    Pull p = std::move(queued_small.front());
    queued_small.pop_front();
    StartPull(std::move(p));
  }
  // Block lists are held in memory (32 bytes a block, and a copy in the
  // driver): a peer announcing four 128 GiB files made a session hold 200 MiB
  // of them before max_listed_blocks.
  while (!queued_large.empty() && active.size() < opt.max_active_pulls &&
         active_large < opt.max_active_large_pulls &&
         (active_large == 0 ||
          active_large_blocks + queued_large.front().blocks <= opt.max_listed_blocks)) {
    Pull p = std::move(queued_large.front());
    queued_large.pop_front();
    StartPull(std::move(p));
  }
  RequestBlocks();
}

void RepairSession::Impl::StartPull(Pull p) {
  const uint64_t op = p.op;
  if (!p.large) {
    // One block (or none): its hash is the file's; no block list needed.
    if (p.blocks == 1) p.hashes = {p.entry.hash};
    p.state = Pull::State::kPreparing;
    Emit(repair::PullFile{op, p.entry, opt.block_size, p.hashes});
    active.emplace(op, std::move(p));
    return;
  }
  ++active_large;
  active_large_blocks += p.blocks;
  auto it = active.emplace(op, std::move(p)).first;
  RequestList(it->second);
}

void RepairSession::Impl::RequestList(Pull& p) {
  const uint32_t req = next_req++;
  out_reqs[req] = OutReq{p.op, true, p.using_alt, {}};
  ++p.reqs_out;
  p.state = Pull::State::kListing;
  p.hashes.clear();
  Send(BlockListReqMsg{req, p.using_alt ? p.alt_source : p.Source(), p.entry.hash});
}

void RepairSession::Impl::RequestBlocks() {
  for (auto& [op, p] : active) {
    // A file may take several requests: each is at most kMaxReqBytes, so the
    // peer never holds more than that of one answer in memory (twice: read,
    // then encoded), however large the window.
    while (p.state == Pull::State::kFetching && !p.failed && p.unrequested > 0) {
      if (in_flight >= opt.max_in_flight_blocks) return;
      if (in_flight > 0 && in_flight_bytes >= opt.max_in_flight_bytes) return;
      const uint64_t room = opt.max_in_flight_blocks - in_flight;
      // The bytes left in the window, in this file's blocks (all full-size
      // but perhaps the last); with nothing in flight, one block always goes.
      const uint64_t per = std::max<uint64_t>(1, std::min<uint64_t>(opt.block_size, p.entry.size));
      const uint64_t byte_room =
          (opt.max_in_flight_bytes - std::min(opt.max_in_flight_bytes, in_flight_bytes)) / per;
      const uint64_t n = std::min<uint64_t>(
          {room, in_flight == 0 ? std::max<uint64_t>(byte_room, 1) : byte_room, p.unrequested,
           kMaxBlockReqIndexes, std::max<uint64_t>(kMinBatch, kMaxReqBytes / per)});
      if (n == 0) break;  // a smaller file may still fit
      if (n < std::min(p.unrequested, kMinBatch) && in_flight > 0) break;
      BlockReqMsg m;
      m.req = next_req++;
      m.path = p.using_alt ? p.alt_source : p.Source();
      m.hash = p.entry.hash;
      OutReq r{op, false, p.using_alt, {}};
      while (m.indexes.size() < n) {
        GOSSYNC_CHECK(p.scan < p.blocks);
        if (!p.have[p.scan] && !p.requested[p.scan]) {
          p.requested[p.scan] = true;
          in_flight_bytes += BlockLen(p.entry.size, opt.block_size, p.scan);
          m.indexes.push_back(static_cast<uint32_t>(p.scan));
          r.pending.insert(static_cast<uint32_t>(p.scan));
        }
        ++p.scan;
      }
      p.unrequested -= n;
      in_flight += n;
      ++p.reqs_out;
      out_reqs[m.req] = std::move(r);
      Send(std::move(m));
    }
  }
}

void RepairSession::Impl::PullReady(uint64_t op, Result<std::vector<bool>> have) {
  auto it = active.find(op);
  GOSSYNC_CHECK(it != active.end() && it->second.state == Pull::State::kPreparing);
  Pull& p = it->second;
  if (!have.ok()) {
    ++stats.skipped;  // the temp file could not be opened
    // Unavailable: another session is fetching it (not an error to report).
    if (have.status().code() != Code::kUnavailable) {
      stats.last_local_error = p.entry.path + ": " + have.status().message();
    }
    ReleasePull(op);
    return;
  }
  GOSSYNC_CHECK(have->size() == p.blocks);
  p.have = std::move(have).value();
  p.requested.assign(p.blocks, false);
  p.missing = static_cast<uint64_t>(std::count(p.have.begin(), p.have.end(), false));
  p.unrequested = p.missing;
  stats.blocks_reused += p.blocks - p.missing;
  if (p.missing == 0) return Commit(p);
  p.state = Pull::State::kFetching;
}

void RepairSession::Impl::Commit(Pull& p) {
  p.state = Pull::State::kCommitting;
  Emit(repair::CommitFile{p.op, p.entry,
                          p.expected ? std::optional<Entry>(*p.expected) : std::nullopt});
}

void RepairSession::Impl::Committed(uint64_t op, const Status& s) {
  auto it = active.find(op);
  GOSSYNC_CHECK(it != active.end() && it->second.state == Pull::State::kCommitting);
  const std::string path = it->second.entry.path;
  std::unique_ptr<Followup> then = std::move(it->second.then);
  ReleasePull(op);
  if (s.ok()) {
    ++stats.entries_applied;
    ++stats.files_pulled;
    if (then) Act(then->target, then->source, then->expected);
    return;
  }
  if (then) busy.erase(then->target.path);  // the winner waits for the next session
  if (s.code() == Code::kCorruption) {
    // Every block matched its listed hash, the whole does not match the
    // entry: the peer's block list was a lie.
    Fail("bad_content", "content of " + path + " does not match its hash: " + s.message());
  } else {
    ++stats.skipped;
    if (s.code() != Code::kAborted) stats.last_local_error = path + ": " + s.message();
  }
}

// Removes a pull that is over (committed, failed, or never started).
void RepairSession::Impl::ReleasePull(uint64_t op) {
  auto it = active.find(op);
  GOSSYNC_CHECK(it != active.end());
  if (it->second.large) {
    --active_large;
    active_large_blocks -= it->second.blocks;
  }
  busy.erase(it->second.entry.path);
  if (it->second.then) busy.erase(it->second.then->target.path);  // it will not follow
  active.erase(it);
}

// The peer could not serve a file, or we could not take it: give it up for
// this session once no request for it is unanswered.
void RepairSession::Impl::FailPull(uint64_t op) {
  auto it = active.find(op);
  GOSSYNC_CHECK(it != active.end());
  Pull& p = it->second;
  if (!p.failed) {
    p.failed = true;
    ++stats.skipped;
  }
  if (p.reqs_out > 0) return;
  if (p.state != Pull::State::kListing) Emit(repair::AbandonPull{op});
  ReleasePull(op);
}

void RepairSession::Impl::OnBlockList(BlockListMsg& m) {
  auto rit = out_reqs.find(m.req);
  if (rit == out_reqs.end() || !rit->second.list) {
    return Fail("unrequested",
                "BLOCKLIST for request " + std::to_string(m.req) + ", which we did not make");
  }
  const uint64_t op = rit->second.op;
  Pull& p = active.at(op);
  if (p.failed) {
    if (m.last) {
      out_reqs.erase(rit);
      --p.reqs_out;
      FailPull(op);
    }
    return;
  }
  const uint64_t have = p.hashes.size();
  if (m.size != p.entry.size || m.block_size != opt.block_size || m.first != have ||
      have + m.hashes.size() > p.blocks || m.last != (have + m.hashes.size() == p.blocks)) {
    return Fail("bad_blocklist",
                "BLOCKLIST for " + p.entry.path + " does not fit: size " + std::to_string(m.size) +
                    " (entry " + std::to_string(p.entry.size) + "), block size " +
                    std::to_string(m.block_size) + " (ours " + std::to_string(opt.block_size) +
                    "), hashes " + std::to_string(m.first) + "+" + std::to_string(m.hashes.size()) +
                    " of " + std::to_string(p.blocks));
  }
  p.hashes.insert(p.hashes.end(), m.hashes.begin(), m.hashes.end());
  if (!m.last) return;
  out_reqs.erase(rit);
  --p.reqs_out;
  p.state = Pull::State::kPreparing;
  Emit(repair::PullFile{op, p.entry, opt.block_size, p.hashes});
}

void RepairSession::Impl::OnBlock(BlockMsg& m) {
  auto rit = out_reqs.find(m.req);
  if (rit == out_reqs.end() || rit->second.list || !rit->second.pending.count(m.index)) {
    return Fail("unrequested_block", "BLOCK " + std::to_string(m.index) + " of request " +
                                         std::to_string(m.req) + ", which we did not ask for");
  }
  const uint64_t op = rit->second.op;
  rit->second.pending.erase(m.index);
  Pull& p = active.at(op);
  --in_flight;
  in_flight_bytes -= BlockLen(p.entry.size, opt.block_size, m.index);
  if (rit->second.pending.empty()) {
    out_reqs.erase(rit);
    --p.reqs_out;
  }
  if (p.failed) {
    if (p.reqs_out == 0) FailPull(op);
    return;
  }
  const uint64_t offset = uint64_t{m.index} * opt.block_size;
  const uint64_t len = std::min<uint64_t>(opt.block_size, p.entry.size - offset);
  if (m.data.size() != len) {
    return Fail("bad_block", "BLOCK " + std::to_string(m.index) + " of " + p.entry.path + " has " +
                                 std::to_string(m.data.size()) + " bytes, expected " +
                                 std::to_string(len));
  }
  if (Sha256(m.data) != p.hashes[m.index]) {
    return Fail("bad_block", "BLOCK " + std::to_string(m.index) + " of " + p.entry.path +
                                 " does not match its hash");
  }
  ++stats.blocks_received;
  stats.content_bytes_received += m.data.size();
  p.have[m.index] = true;
  --p.missing;
  Emit(repair::WriteBlock{op, p.entry.path, m.index, offset, std::move(m.data)});
  if (p.missing == 0) Commit(p);
}

void RepairSession::Impl::OnReqError(const ReqErrorMsg& m) {
  auto rit = out_reqs.find(m.req);
  if (rit == out_reqs.end()) {
    return Fail("unrequested",
                "REQ_ERROR for request " + std::to_string(m.req) + ", which we did not make");
  }
  const OutReq r = std::move(rit->second);
  out_reqs.erase(rit);
  in_flight -= r.pending.size();
  Pull& p = active.at(r.op);
  for (uint32_t i : r.pending) in_flight_bytes -= BlockLen(p.entry.size, opt.block_size, i);
  --p.reqs_out;
  // Not at the path it had: the peer may have made its conflict copy of it
  // since (a session cut between its copy and ours); ask there.
  if (!p.failed && !r.alt && !p.alt_source.empty() &&
      m.code == static_cast<uint8_t>(ReqErrorCode::kNotFound)) {
    p.using_alt = true;
    if (r.list) return RequestList(p);
    for (uint32_t i : r.pending) {
      p.requested[i] = false;
      ++p.unrequested;
      p.scan = std::min<uint64_t>(p.scan, i);
    }
    return;  // Post() asks again
  }
  FailPull(r.op);  // e.g. `changed`: the peer indexes the new version, next session
}

// ---- Serving ----

bool RepairSession::Impl::ServePaths(const std::string& path, const Hash256& hash,
                                     std::string* read, std::string* alt) {
  read->clear();
  alt->clear();
  auto is_it = [&](const std::string& p) {
    auto e = view->Get(p);
    if (!e.ok()) return false;  // the driver re-checks; an error there is an I/O error
    return e->has_value() && (*e)->live() && (*e)->kind == EntryKind::kFile && (*e)->hash == hash;
  };
  // The peer asks by the path it saw; if we lost a conflict on it, the
  // content it wants is (or is about to be) our conflict copy.
  auto c = copies.find({path, hash});
  if (is_it(path)) {
    *read = path;
    if (c != copies.end()) *alt = c->second;
    return true;
  }
  if (c != copies.end() && is_it(c->second)) {
    *read = c->second;
    return true;
  }
  return false;
}

void RepairSession::Impl::SendReqError(uint32_t req, const Status& s) {
  Send(ReqErrorMsg{req, static_cast<uint8_t>(CodeFor(s)), s.message().substr(0, kMaxReasonBytes)});
}

void RepairSession::Impl::OnBlockListReq(const BlockListReqMsg& m) {
  if (dry_run) return Fail("protocol", "BLOCKLIST_REQ in a dry run");
  if (Status s = ValidatePath(m.path); !s.ok()) {
    return Fail("bad_path", "BLOCKLIST_REQ path: " + s.message());
  }
  if (in_reqs.count(m.req))
    return Fail("protocol", "request id " + std::to_string(m.req) + " reused");
  if (serving_lists >= opt.max_active_large_pulls) {
    return Fail("too_many_requests", "more than " + std::to_string(opt.max_active_large_pulls) +
                                         " BLOCKLIST_REQ outstanding");
  }
  std::string read, alt;
  if (!ServePaths(m.path, m.hash, &read, &alt)) {
    return SendReqError(m.req, Status::NotFound("no live file with that hash at that path"));
  }
  in_reqs[m.req] = InReq{true, {}};
  ++serving_lists;
  Emit(repair::ReadBlockList{m.req, read, alt, m.hash, opt.block_size});
}

void RepairSession::Impl::OnBlockReq(BlockReqMsg& m) {
  if (dry_run) return Fail("protocol", "BLOCK_REQ in a dry run");
  if (Status s = ValidatePath(m.path); !s.ok()) {
    return Fail("bad_path", "BLOCK_REQ path: " + s.message());
  }
  if (m.indexes.empty() || m.indexes.size() > kMaxBlockReqIndexes) {
    return Fail("too_many_items",
                "BLOCK_REQ with " + std::to_string(m.indexes.size()) + " block indexes");
  }
  if (in_reqs.count(m.req))
    return Fail("protocol", "request id " + std::to_string(m.req) + " reused");
  if (serving_blocks + m.indexes.size() > opt.max_in_flight_blocks) {
    return Fail("too_many_requests", "more than " + std::to_string(opt.max_in_flight_blocks) +
                                         " blocks requested and not yet sent");
  }
  std::string read, alt;
  if (!ServePaths(m.path, m.hash, &read, &alt)) {
    return SendReqError(m.req, Status::NotFound("no live file with that hash at that path"));
  }
  auto e = view->Get(read);
  if (!e.ok()) return LocalError(e.status());
  const uint64_t blocks = BlockCount((*e)->size, opt.block_size);
  uint64_t bytes = 0;
  for (uint32_t i : m.indexes) {
    if (i >= blocks) {
      return Fail("bad_block", "BLOCK_REQ for block " + std::to_string(i) + " of a file of " +
                                   std::to_string(blocks) + " blocks");
    }
    bytes += BlockLen((*e)->size, opt.block_size, i);
  }
  // The puller keeps to the same window; a request past it is a greedy
  // peer's. Only a lone block may exceed it (a block larger than the window).
  if (serving_bytes + bytes > opt.max_in_flight_bytes &&
      !(serving_blocks == 0 && m.indexes.size() == 1)) {
    return Fail("too_many_requests", "more than " + std::to_string(opt.max_in_flight_bytes) +
                                         " bytes of blocks requested and not yet sent");
  }
  serving_blocks += m.indexes.size();
  serving_bytes += bytes;
  in_reqs[m.req] = InReq{false, m.indexes, bytes};
  Emit(repair::ReadBlocks{m.req, read, alt, m.hash, opt.block_size, std::move(m.indexes)});
}

void RepairSession::Impl::BlockListRead(uint32_t req, Result<BlockListInfo> list) {
  auto it = in_reqs.find(req);
  GOSSYNC_CHECK(it != in_reqs.end() && it->second.list);
  in_reqs.erase(it);
  --serving_lists;
  if (!list.ok()) return SendReqError(req, list.status());
  GOSSYNC_CHECK(list->block_size == opt.block_size &&
                list->hashes.size() == BlockCount(list->size, opt.block_size));
  const std::vector<Hash256>& h = list->hashes;
  size_t i = 0;
  do {  // an empty list still gets its one (last) message
    const size_t end = std::min(h.size(), i + kMaxBlockListHashes / 2);
    BlockListMsg m;
    m.req = req;
    m.size = list->size;
    m.block_size = list->block_size;
    m.first = static_cast<uint32_t>(i);
    m.hashes.assign(h.begin() + static_cast<std::ptrdiff_t>(i),
                    h.begin() + static_cast<std::ptrdiff_t>(end));
    m.last = end == h.size();
    Send(std::move(m));
    i = end;
  } while (i < h.size());
}

void RepairSession::Impl::BlocksRead(uint32_t req,
                                     Result<std::vector<std::vector<uint8_t>>> blocks) {
  auto it = in_reqs.find(req);
  GOSSYNC_CHECK(it != in_reqs.end() && !it->second.list);
  const std::vector<uint32_t> indexes = std::move(it->second.indexes);
  serving_bytes -= it->second.bytes;
  in_reqs.erase(it);
  serving_blocks -= indexes.size();
  if (!blocks.ok()) return SendReqError(req, blocks.status());
  GOSSYNC_CHECK(blocks->size() == indexes.size());
  for (size_t i = 0; i < indexes.size(); ++i) {
    ++stats.blocks_sent;
    stats.content_bytes_sent += (*blocks)[i].size();
    Send(BlockMsg{req, indexes[i], std::move((*blocks)[i])});
  }
}

}  // namespace gossync::core
