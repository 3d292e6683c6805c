// The rules for membership updates: what a claim about a member does to our
// view of it. The packet and timer side is in membership_net.cc.
#include "agent/core/membership.h"

#include <algorithm>

#include "agent/core/entry.h"

namespace gossync::core {

const char* DropName(Drop d) {
  switch (d) {
    case Drop::kReplay:
      return "replay";
    case Drop::kTooOld:
      return "too_old";
    case Drop::kFromSelf:
      return "from_self";
    case Drop::kNameConflict:
      return "name_conflict";
    case Drop::kNotForUs:
      return "not_for_us";
    case Drop::kStaleBoot:
      return "stale_boot";
    case Drop::kTableFull:
      return "table_full";
    case Drop::kBusy:
      return "busy";
    case Drop::kLeaving:
      return "leaving";
    case Drop::kUnsolicited:
      return "unsolicited";
  }
  return "unknown";
}

Membership::Membership(MembershipConfig config)
    : config_(std::move(config)),
      incarnation_(config_.initial_incarnation),
      rng_(config_.rng_seed),
      queue_(config_.max_broadcasts) {
  GOSSYNC_CHECK(config_.Validate().ok());
  self_ = MakeMemberInfo(config_.name, config_.gossip_addr, config_.repair_addr);
  join_backoff_ms_ = config_.join_retry_ms;
}

size_t Membership::ClusterSize() const {
  return 1 + Count(MemberState::kAlive) + Count(MemberState::kSuspect);
}

bool Membership::IsLive(const MemberRecord& m) const {
  return m.info != nullptr && (m.state == MemberState::kAlive || m.state == MemberState::kSuspect);
}

MemberUpdate Membership::SelfUpdate() const {
  return MemberUpdate{self_state_,
                      incarnation_,
                      self_,
                      self_state_ == MemberState::kAlive ? config_.boot_id : 0,
                      {}};
}

void Membership::SetLocalState(const Hash256& root, uint64_t entry_count, uint64_t hlc) {
  root_ = root;
  entry_count_ = entry_count;
  hlc_ = hlc;
  have_local_state_ = true;
}

void Membership::SetSeeds(std::vector<std::string> seeds) { config_.seeds = std::move(seeds); }

// ---- Updates -----------------------------------------------------------------

void Membership::Apply(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out) {
  if (u.info == nullptr || !IsValidNodeName(u.info->name)) return;  // the codec checks; be safe
  if (u.info->name == self_->name) {
    ApplyAboutSelf(u, out);
    return;
  }
  switch (u.state) {
    case MemberState::kAlive:
      ApplyAlive(now, u, origin, out);
      break;
    case MemberState::kSuspect:
      ApplySuspect(now, u, origin, out);
      break;
    case MemberState::kDead:
    case MemberState::kLeft:
      ApplyDeadOrLeft(now, u, origin, out);
      break;
  }
}

// Claims about ourselves. Anything that says we are not alive at our current
// incarnation or later is answered with a higher incarnation, which beats the
// claim everywhere it has spread. The exception is an alive claim from another
// address: that is another node using our name, and outbidding it would start
// an incarnation war; we report it instead.
void Membership::ApplyAboutSelf(const MemberUpdate& u, Actions* out) {
  if (self_state_ == MemberState::kLeft) return;
  switch (u.state) {
    case MemberState::kAlive:
      if (u.incarnation <= incarnation_) return;
      if (!u.info->gossip_addr.empty() && !self_->gossip_addr.empty() &&
          u.info->gossip_addr != self_->gossip_addr) {
        ++stats_.drops[static_cast<int>(Drop::kNameConflict)];
        out->conflicts.push_back({self_->name, self_->gossip_addr, u.info->gossip_addr});
        return;
      }
      // Our own older run was known at a higher incarnation: we restarted.
      Refute(u.incarnation);
      return;
    case MemberState::kSuspect:
    case MemberState::kDead:
    case MemberState::kLeft:
      if (u.incarnation < incarnation_) return;  // our newer alive already beats it
      Refute(u.incarnation);
      return;
  }
}

void Membership::Refute(uint64_t accused_incarnation) {
  incarnation_ = std::max(incarnation_, accused_incarnation) + 1;
  ++stats_.refutations;
  queue_.Enqueue(SelfUpdate());
}

uint32_t Membership::AddMember(uint64_t now, const MemberUpdate& u, bool report, Actions* out) {
  if (table_.size() >= config_.max_members) {
    ++stats_.drops[static_cast<int>(Drop::kTableFull)];
    return MemberTable::kNone;
  }
  uint32_t slot = table_.Insert(u.info);
  MemberRecord& m = table_.at(slot);
  m.incarnation = u.incarnation;
  m.boot = u.boot;
  m.state = MemberState::kAlive;
  m.state_change_ms = now;
  ++count_[static_cast<int>(MemberState::kAlive)];
  // Probed in the current round: appended, then swapped to a random place
  // among the members not yet probed this round.
  probe_order_.push_back(slot);
  size_t lo = std::min(probe_pos_, probe_order_.size() - 1);
  std::swap(probe_order_.back(), probe_order_[lo + Uniform(probe_order_.size() - lo)]);
  if (report) {
    out->events.push_back(
        {u.info->name, std::nullopt, MemberState::kAlive, u.incarnation, u.info->gossip_addr});
  }
  return slot;
}

void Membership::SetState(uint32_t slot, MemberState to, uint64_t now, Actions* out) {
  MemberRecord& m = table_.at(slot);
  MemberState from = m.state;
  if (from == to) return;
  --count_[static_cast<int>(from)];
  ++count_[static_cast<int>(to)];
  const bool was_gone = from == MemberState::kDead || from == MemberState::kLeft;
  const bool is_gone = to == MemberState::kDead || to == MemberState::kLeft;
  if (was_gone) reap_at_.erase({m.state_change_ms + config_.dead_reap_ms, slot});
  if (from == MemberState::kSuspect) StopSuspicion(slot);
  m.state = to;
  m.state_change_ms = now;
  if (is_gone) reap_at_.insert({now + config_.dead_reap_ms, slot});
  if (was_gone && !is_gone) probe_order_.push_back(slot);  // probed again from the next round
  out->events.push_back({m.info->name, from, to, m.incarnation, m.info->gossip_addr});
}

void Membership::ApplyAlive(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out) {
  const bool rebroadcast = origin != Origin::kSync;
  uint32_t slot = table_.Find(u.info->name);
  if (slot == MemberTable::kNone) {
    if (AddMember(now, u, true, out) != MemberTable::kNone && rebroadcast) queue_.Enqueue(u);
    return;
  }
  MemberRecord& m = table_.at(slot);
  if (u.incarnation <= m.incarnation) return;  // old news, or needs a refutation to beat
  if (u.info->gossip_addr != m.info->gossip_addr && m.state == MemberState::kAlive) {
    // Someone else claims a name that a member answering at its address
    // holds. If the holder is in fact gone it will be suspected, and then the
    // claim (repeated by the claimer's refutation) is accepted.
    ++stats_.drops[static_cast<int>(Drop::kNameConflict)];
    out->conflicts.push_back({m.info->name, m.info->gossip_addr, u.info->gossip_addr});
    return;
  }
  m.incarnation = u.incarnation;
  m.boot = u.boot;  // a higher incarnation speaks for the newer run, even if its clock went back
  if (!(*u.info == *m.info)) table_.SetInfo(slot, u.info);
  SetState(slot, MemberState::kAlive, now, out);
  if (rebroadcast) queue_.Enqueue(u);
}

void Membership::ApplySuspect(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out) {
  uint32_t slot = table_.Find(u.info->name);
  if (slot == MemberTable::kNone) return;  // never heard of it alive: nothing to suspect
  MemberRecord& m = table_.at(slot);
  if (u.incarnation < m.incarnation) return;
  if (m.state == MemberState::kDead || m.state == MemberState::kLeft) return;
  const bool rebroadcast = origin != Origin::kSync;
  if (m.state == MemberState::kSuspect && u.incarnation == m.incarnation) {
    // Another member suspects it too: an independent confirmation shortens
    // the timeout, and is worth passing on (Lifeguard).
    auto it = suspicions_.find(slot);
    if (it == suspicions_.end()) return;
    uint64_t before = it->second.DeadlineMs();
    if (!it->second.Confirm(u.from)) return;
    suspicion_deadlines_.erase({before, slot});
    suspicion_deadlines_.insert({it->second.DeadlineMs(), slot});
    if (rebroadcast) queue_.Enqueue(u);
    return;
  }
  m.incarnation = u.incarnation;
  if (m.state == MemberState::kSuspect) StopSuspicion(slot);  // suspect again, newer incarnation
  SetState(slot, MemberState::kSuspect, now, out);
  StartSuspicion(now, slot, u.from);
  if (rebroadcast) queue_.Enqueue(u);
}

void Membership::ApplyDeadOrLeft(uint64_t now, const MemberUpdate& u, Origin origin, Actions* out) {
  uint32_t slot = table_.Find(u.info->name);
  if (slot == MemberTable::kNone) return;  // a death we never saw the life of
  MemberRecord& m = table_.at(slot);
  if (u.incarnation < m.incarnation) return;
  if (m.state == MemberState::kLeft) return;  // left is final for its incarnation
  const bool rebroadcast = origin != Origin::kSync;
  if (m.state == u.state) {
    // Dead again at a newer incarnation (it came back and died while we did
    // not look): remember the incarnation, so the old alive cannot return.
    if (u.incarnation > m.incarnation) {
      m.incarnation = u.incarnation;
      if (rebroadcast) queue_.Enqueue(u);
    }
    return;
  }
  m.incarnation = u.incarnation;
  SetState(slot, u.state, now, out);
  if (rebroadcast) queue_.Enqueue(u);
}

// ---- Suspicion and reaping ---------------------------------------------------------

void Membership::StartSuspicion(uint64_t now, uint32_t slot, std::string_view raised_by) {
  const size_t n = ClusterSize();
  uint64_t min_ms = SuspicionMinMs(config_.suspicion_mult, n, config_.probe_interval_ms);
  uint64_t max_ms = min_ms * config_.suspicion_max_mult;
  // Lifeguard wants suspicion_mult - 2 confirmations to reach the minimum,
  // unless the cluster is too small to provide them.
  uint32_t k = config_.suspicion_mult > 2 ? config_.suspicion_mult - 2 : 0;
  if (n < k + 2) k = 0;
  auto [it, fresh] = suspicions_.try_emplace(slot, now, min_ms, max_ms, k, raised_by);
  GOSSYNC_CHECK(fresh);
  suspicion_deadlines_.insert({it->second.DeadlineMs(), slot});
}

void Membership::StopSuspicion(uint32_t slot) {
  auto it = suspicions_.find(slot);
  if (it == suspicions_.end()) return;
  suspicion_deadlines_.erase({it->second.DeadlineMs(), slot});
  suspicions_.erase(it);
}

void Membership::ExpireSuspicions(uint64_t now, Actions* out) {
  while (!suspicion_deadlines_.empty() && suspicion_deadlines_.begin()->first <= now) {
    uint32_t slot = suspicion_deadlines_.begin()->second;
    MemberRecord& m = table_.at(slot);
    GOSSYNC_CHECK(m.state == MemberState::kSuspect);
    ++stats_.deaths;
    MemberUpdate dead{MemberState::kDead, m.incarnation, m.info, 0, self_->name};
    SetState(slot, MemberState::kDead, now, out);  // stops the suspicion
    queue_.Enqueue(std::move(dead));
  }
}

void Membership::Reap(uint64_t now, Actions* out) {
  while (!reap_at_.empty() && reap_at_.begin()->first <= now) {
    uint32_t slot = reap_at_.begin()->second;
    reap_at_.erase(reap_at_.begin());
    MemberRecord& m = table_.at(slot);
    out->events.push_back(
        {m.info->name, m.state, std::nullopt, m.incarnation, m.info->gossip_addr});
    --count_[static_cast<int>(m.state)];
    if (sync_.active && sync_.peer.name == m.info->name) sync_.active = false;
    table_.Erase(slot);
    // The slot may be reused; probe_order_ entries pointing at it are
    // harmless (a member probed twice in a round) and go at the next rebuild.
  }
}

// ---- Views -----------------------------------------------------------------------

MemberView Membership::View(const MemberRecord& m) const {
  MemberView v;
  v.name = m.info->name;
  v.gossip_addr = m.info->gossip_addr;
  v.repair_addr = m.info->repair_addr;
  v.state = m.state;
  v.incarnation = m.incarnation;
  v.state_change_ms = m.state_change_ms;
  if (m.contact != nullptr) {
    v.last_heard_ms = m.contact->last_heard_ms;
    v.has_root = m.contact->has_root;
    v.root = m.contact->root;
    v.entry_count = m.contact->entry_count;
    v.hlc = m.contact->hlc;
  }
  return v;
}

std::vector<MemberView> Membership::Members() const {
  std::vector<MemberView> out;
  out.reserve(table_.size());
  for (uint32_t s = 0; s < table_.slot_count(); ++s) {
    if (table_.InUse(s)) out.push_back(View(table_.at(s)));
  }
  return out;
}

std::optional<MemberView> Membership::Find(std::string_view name) const {
  uint32_t slot = table_.Find(name);
  if (slot == MemberTable::kNone) return std::nullopt;
  return View(table_.at(slot));
}

std::optional<MemberState> Membership::StateOf(std::string_view name) const {
  uint32_t slot = table_.Find(name);
  if (slot == MemberTable::kNone) return std::nullopt;
  return table_.at(slot).state;
}

void Membership::Bootstrap(uint64_t now_ms, const std::vector<MemberUpdate>& members) {
  Actions ignored;
  table_.Reserve(table_.size() + members.size());
  for (const MemberUpdate& u : members) {
    if (u.state != MemberState::kAlive || u.info == nullptr || u.info->name == self_->name)
      continue;
    if (table_.Find(u.info->name) != MemberTable::kNone) continue;
    if (AddMember(now_ms, u, false, &ignored) != MemberTable::kNone) joined_ = true;
  }
  RebuildProbeOrder();
}

}  // namespace gossync::core
