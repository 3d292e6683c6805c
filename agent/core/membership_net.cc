// The packet and timer side of Membership: probing, gossip rounds, joining,
// member-list sync, and the replay and boot checks on every packet.
#include <algorithm>

#include "agent/core/membership.h"

namespace gossync::core {

namespace {
constexpr int kSyncRetries = 3;
}  // namespace

uint64_t Membership::Jittered(uint64_t base_ms, uint32_t pct) {
  if (pct == 0 || base_ms == 0) return base_ms;
  uint64_t span = base_ms * pct / 100;
  return base_ms - span + Uniform(2 * span + 1);
}

void Membership::Start(uint64_t now) {
  started_ = true;
  // Random phases, so nodes started together do not probe and gossip in step.
  next_probe_ms_ = now + Uniform(config_.probe_interval_ms);
  next_gossip_ms_ = now + Uniform(config_.gossip_interval_ms);
  next_flush_ms_ = now + Uniform(config_.broadcast_interval_ms);
  next_join_ms_ = now;
  // The periodic work too, spread over its (scaled) interval: nodes started
  // together (or restored with a large member list) must not all pull member
  // lists in the same second.
  const uint64_t scale = ScaleFactor(ClusterSize());
  next_seed_ms_ = now + 1 + Uniform(uint64_t{config_.seed_rejoin_ms} * scale);
  next_sync_ms_ = now + 1 + Uniform(uint64_t{config_.sync_interval_ms} * scale);
  next_reconnect_ms_ = now + 1 + Uniform(config_.reconnect_interval_ms);
}

uint64_t Membership::NextTickMs() const {
  if (!started_) return 0;
  uint64_t t = next_gossip_ms_;
  if (self_state_ == MemberState::kLeft) return t;
  t = std::min(t, next_probe_ms_);
  if (probe_.active) {
    t = std::min(t, probe_.start_ms + config_.probe_interval_ms);
    if (!probe_.acked && !probe_.indirect_sent) {
      t = std::min(t, probe_.start_ms + config_.probe_timeout_ms);
    }
  }
  if (!joined_ && !config_.seeds.empty()) t = std::min(t, next_join_ms_);
  if (joined_ && config_.seed_rejoin_ms > 0 && !config_.seeds.empty()) {
    t = std::min(t, next_seed_ms_);
  }
  if (config_.sync_interval_ms > 0) t = std::min(t, next_sync_ms_);
  if (config_.reconnect_interval_ms > 0 && !reap_at_.empty()) t = std::min(t, next_reconnect_ms_);
  if (config_.broadcast_interval_ms > 0) t = std::min(t, next_flush_ms_);
  if (sync_.active) t = std::min(t, sync_.deadline_ms);
  if (!suspicion_deadlines_.empty()) t = std::min(t, suspicion_deadlines_.begin()->first);
  if (!reap_at_.empty()) t = std::min(t, reap_at_.begin()->first);
  return t;
}

void Membership::Tick(uint64_t now, Actions* out) {
  if (!started_) Start(now);
  // Expired entries never match (IsOurProbeId checks the time); this only
  // keeps the vectors short.
  std::erase_if(pending_, [now](const PendingPing& p) { return p.expires_ms <= now; });
  std::erase_if(relays_, [now](const Relay& r) { return r.expires_ms <= now; });

  if (self_state_ == MemberState::kLeft) {
    if (now >= next_gossip_ms_) {
      next_gossip_ms_ = now + Jittered(config_.gossip_interval_ms, config_.gossip_jitter_pct);
      GossipRound(now, config_.gossip_fanout, out);
    }
    return;
  }
  ExpireSuspicions(now, out);
  Reap(now, out);
  TickJoin(now, out);
  TickProbe(now, out);
  if (now >= next_gossip_ms_) {
    next_gossip_ms_ = now + Jittered(config_.gossip_interval_ms, config_.gossip_jitter_pct);
    GossipRound(now, config_.gossip_fanout, out);
  }
  // Updates waiting in the queue go out faster than the rounds: under churn
  // (many suspicions and refutations) probes and rounds alone cannot carry
  // them all, and the last members to hear a refutation would time out.
  // A fixed tick, as memberlist's gossip ticker: an update waits for the
  // next one rather than being relayed the moment it arrives.
  if (config_.broadcast_interval_ms > 0 && now >= next_flush_ms_) {
    next_flush_ms_ = now + Jittered(config_.broadcast_interval_ms, config_.gossip_jitter_pct);
    if (!queue_.empty()) GossipRound(now, config_.gossip_fanout, out);
  }
  TickSync(now, out);
  if (config_.reconnect_interval_ms > 0 && now >= next_reconnect_ms_) {
    next_reconnect_ms_ = now + config_.reconnect_interval_ms;
    Reconnect(now, out);
  }
  stats_.broadcasts_evicted = queue_.evicted();
}

// ---- Sending -------------------------------------------------------------------

Packet Membership::MakePacket(const Dest& to, Body body) {
  Packet p;
  p.sender = self_;
  p.sender_state = self_state_;
  p.incarnation = incarnation_;
  p.boot_id = config_.boot_id;
  p.seq = ++seq_;
  p.to = to.name;
  p.to_boot = to.boot;
  p.body = std::move(body);
  return p;
}

void Membership::Emit(std::string addr, Packet p, Actions* out) {
  size_t size = EncodedSize(p);
  GOSSYNC_CHECK(size <= config_.max_packet_bytes);
  ++stats_.packets_out;
  stats_.bytes_out += size;
  out->sends.push_back(Outgoing{std::move(addr), std::move(p)});
}

void Membership::Send(Dest to, Body body, bool piggyback, Actions* out) {
  Packet p = MakePacket(to, std::move(body));
  if (piggyback && !queue_.empty()) {
    size_t base = EncodedSizeWithoutUpdates(p) + kUpdateListHeaderMax;
    if (base < config_.max_packet_bytes) {
      queue_.Fill(config_.max_packet_bytes - base,
                  RetransmitLimit(config_.retransmit_mult, ClusterSize()), kMaxUpdatesPerPacket,
                  &p.updates);
    }
  }
  Emit(std::move(to.addr), std::move(p), out);
}

Membership::Dest Membership::DestOf(const MemberRecord& m) {
  return Dest{m.info->gossip_addr, m.info->name, m.boot};
}

void Membership::SendPingTo(uint64_t now, Dest to, uint64_t target_inc, MemberState target_state,
                            PendingKind kind, Actions* out) {
  if (pending_.size() >= config_.max_pending) {
    ++stats_.drops[static_cast<int>(Drop::kBusy)];
    return;
  }
  // A challenge goes to an address not proven yet: no piggyback for it.
  const bool piggyback = kind != PendingKind::kChallenge;
  uint64_t id = Random();
  pending_.push_back(PendingPing{id, to.name, now + config_.probe_interval_ms, kind});
  Send(std::move(to), Ping{id, target_inc, target_state}, piggyback, out);
}

// `name` addressed us by an earlier boot id of ours (it has not heard that we
// restarted): ping it, so our header teaches it the new one. One in flight
// per name.
void Membership::Challenge(uint64_t now, std::string_view name, std::string_view addr,
                           uint64_t boot, Actions* out) {
  for (const PendingPing& p : pending_) {
    if (p.kind == PendingKind::kChallenge && p.name == name && p.expires_ms > now) return;
  }
  uint64_t inc = 0;
  MemberState state = MemberState::kAlive;
  if (uint32_t slot = table_.Find(name); slot != MemberTable::kNone) {
    inc = table_.at(slot).incarnation;
    state = table_.at(slot).state;
  }
  ++stats_.challenges;
  SendPingTo(now, Dest{std::string(addr), std::string(name), boot}, inc, state,
             PendingKind::kChallenge, out);
}

// ---- Receiving -----------------------------------------------------------------

void Membership::HandlePacket(uint64_t now, std::string_view from_addr, const Packet& p,
                              Actions* out) {
  if (!started_) Start(now);
  ++stats_.packets_in;
  auto drop = [this](Drop d) { ++stats_.drops[static_cast<int>(d)]; };
  if (p.sender == nullptr) return;
  const std::string& name = p.sender->name;
  const Ping* ping = std::get_if<Ping>(&p.body);
  // A bare ack: echoes the nonce, says who we are, carries nothing else.
  auto bare_ack = [&] {
    Send(Dest{std::string(from_addr), name, p.boot_id}, Ack{ping->probe_id}, false, out);
  };
  if (name == self_->name) {
    if (p.boot_id == config_.boot_id) {
      drop(Drop::kFromSelf);
    } else {
      drop(Drop::kNameConflict);
      out->conflicts.push_back({name, self_->gossip_addr, std::string(from_addr)});
    }
    return;
  }
  if (self_state_ == MemberState::kLeft) {
    // Answer pings, so probers learn from the header that we left.
    if (ping != nullptr)
      Send(Dest{std::string(from_addr), name, p.boot_id}, Ack{ping->probe_id}, true, out);
    drop(Drop::kLeaving);
    return;
  }

  // Meant for us, in this run? A packet for another node or for an earlier
  // run of ours (a replay, or a sender behind on our restart) is not; a ping
  // still gets a bare ack, whose header teaches the sender our boot id.
  if (p.to != self_->name || p.to_boot != config_.boot_id) {
    if (ping != nullptr) bare_ack();
    if (p.to.empty() && p.to_boot == 0 && ping != nullptr) {
      ++stats_.join_pings;  // a join ping: the joiner introduces itself next
      return;
    }
    drop(Drop::kNotForUs);
    if (p.to == self_->name && ping == nullptr) Challenge(now, name, from_addr, p.boot_id, out);
    return;
  }

  uint32_t slot = table_.Find(name);
  if (slot != MemberTable::kNone && p.boot_id < table_.at(slot).boot) {
    // An older run than the newest we know of: a replay of a gone run. (Or a
    // run whose boot id went back, its clock stepped back across a restart
    // and nothing persisted the last one: it is heard once SWIM has declared
    // the run we knew dead, below.)
    const MemberState st = table_.at(slot).state;
    if (st != MemberState::kDead && st != MemberState::kLeft) {
      if (ping != nullptr) bare_ack();
      drop(Drop::kStaleBoot);
      return;
    }
    table_.at(slot).boot = p.boot_id;
  }
  if (slot != MemberTable::kNone) {
    const Contact* c = table_.at(slot).contact.get();
    if (c != nullptr && c->window_boot == p.boot_id) {
      switch (c->window.Check(p.seq)) {
        case ReplayWindow::Verdict::kDuplicate:
          drop(Drop::kReplay);
          return;
        case ReplayWindow::Verdict::kTooOld:
          drop(Drop::kTooOld);
          return;
        case ReplayWindow::Verdict::kFresh:
          break;
      }
    }
  }

  const bool was_live = slot != MemberTable::kNone && IsLive(table_.at(slot));
  // The header is the sender's own claim about itself.
  MemberInfoPtr info = p.sender;
  if (info->gossip_addr.empty()) {
    info = MakeMemberInfo(info->name, std::string(from_addr), info->repair_addr);
  }
  const bool left = p.sender_state == MemberState::kLeft;
  Apply(now,
        MemberUpdate{left ? MemberState::kLeft : MemberState::kAlive,
                     p.incarnation,
                     info,
                     left ? 0 : p.boot_id,
                     {}},
        Origin::kDirect, out);
  slot = table_.Find(name);
  if (slot == MemberTable::kNone || table_.at(slot).info->gossip_addr != info->gossip_addr) {
    // Not a member we can hold (table full) or the name is held at another
    // address: answer a ping, nothing more. Apply counted the reason.
    if (ping != nullptr) bare_ack();
    return;
  }
  MemberRecord& m = table_.at(slot);
  // The packet proves its run exists; a run newer than the one we knew
  // replaces it even if the header's incarnation is stale (a restart).
  m.boot = std::max(m.boot, p.boot_id);
  if (m.contact == nullptr) m.contact = std::make_unique<Contact>();
  if (m.contact->window_boot != p.boot_id) {
    m.contact->window_boot = p.boot_id;
    m.contact->window = ReplayWindow();
  }
  m.contact->window.Mark(p.seq);
  m.contact->last_heard_ms = now;
  joined_ = true;
  if (m.state == MemberState::kDead) {
    // It talks to us, so it does not know it is dead to us: tell it, and it
    // refutes (a healing partition).
    bool asked = false;
    for (const PendingPing& pp : pending_) {
      asked |= pp.kind == PendingKind::kReconnect && pp.name == name && pp.expires_ms > now;
    }
    if (!asked) SendPingTo(now, DestOf(m), m.incarnation, m.state, PendingKind::kReconnect, out);
  }

  if (!std::holds_alternative<SyncPage>(p.body)) {
    stats_.updates_in += p.updates.size();
    for (const MemberUpdate& u : p.updates) Apply(now, u, Origin::kPiggyback, out);
  }
  HandleBody(now, from_addr, p, was_live, out);
}

void Membership::HandleBody(uint64_t now, std::string_view from_addr, const Packet& p,
                            bool sender_was_live, Actions* out) {
  const std::string& name = p.sender->name;
  const Dest reply{std::string(from_addr), name, p.boot_id};
  if (const Ping* ping = std::get_if<Ping>(&p.body)) {
    // The prober's view of us, if behind or unkind, is refuted before we
    // answer, so the ack's header already carries the new incarnation.
    if (ping->target_incarnation > incarnation_ ||
        (ping->target_state != MemberState::kAlive && ping->target_incarnation >= incarnation_)) {
      Refute(ping->target_incarnation);
    }
    Send(reply, Ack{ping->probe_id}, true, out);
  } else if (const Ack* ack = std::get_if<Ack>(&p.body)) {
    HandleAck(now, p, *ack, sender_was_live, out);
  } else if (const PingReq* req = std::get_if<PingReq>(&p.body)) {
    if (req->target == self_->name) {
      Send(reply, Ack{req->probe_id}, true, out);
      return;
    }
    if (req->target_addr.empty()) return;
    if (relays_.size() >= config_.max_pending) {
      ++stats_.drops[static_cast<int>(Drop::kBusy)];
      return;
    }
    uint64_t id = Random();
    relays_.push_back(Relay{id, req->probe_id, reply, now + config_.probe_interval_ms});
    // Our own knowledge of the target's run, if newer, beats the requester's.
    uint64_t boot = req->target_boot;
    if (uint32_t t = table_.Find(req->target); t != MemberTable::kNone) {
      boot = std::max(boot, table_.at(t).boot);
    }
    Send(Dest{req->target_addr, req->target, boot},
         Ping{id, req->target_incarnation, req->target_state}, true, out);
  } else if (const Gossip* g = std::get_if<Gossip>(&p.body)) {
    uint32_t slot = table_.Find(name);
    MemberRecord& m = table_.at(slot);
    m.contact->has_root = true;
    m.contact->root = g->root;
    m.contact->entry_count = g->entry_count;
    m.contact->hlc = g->hlc;
    if (have_local_state_ && g->root != root_ && m.state == MemberState::kAlive) {
      out->root_differs.push_back(
          RootDiffers{name, m.info->repair_addr, g->root, g->entry_count, g->hlc});
    }
  } else if (const SyncRequest* sr = std::get_if<SyncRequest>(&p.body)) {
    ServeSync(reply, sr->cursor, out);
  } else if (const SyncPage* page = std::get_if<SyncPage>(&p.body)) {
    if (!sync_.active || sync_.peer.name != name) {
      ++stats_.drops[static_cast<int>(Drop::kUnsolicited)];
      return;
    }
    ++stats_.sync_pages_received;
    for (const MemberUpdate& u : p.updates) {
      if (u.state != MemberState::kSuspect) {
        Apply(now, u, Origin::kSync, out);
      } else {
        Apply(now, MemberUpdate{u.state, u.incarnation, u.info, 0, name}, Origin::kSync, out);
      }
    }
    if (page->done || page->next_cursor <= sync_.cursor) {
      sync_.active = false;
      return;
    }
    sync_.cursor = page->next_cursor;
    sync_.retries = 0;
    sync_.deadline_ms = now + config_.probe_interval_ms;
    Send(sync_.peer, SyncRequest{sync_.cursor}, false, out);
  }
}

void Membership::HandleAck(uint64_t now, const Packet& p, const Ack& ack, bool sender_was_live,
                           Actions* out) {
  if (probe_.active && ack.probe_id == probe_.probe_id) {
    probe_.acked = true;
    return;
  }
  for (auto r = relays_.begin(); r != relays_.end(); ++r) {
    if (r->our_id == ack.probe_id && r->expires_ms > now) {
      Relay relay = std::move(*r);
      relays_.erase(r);
      Send(std::move(relay.reply), Ack{relay.their_id}, true, out);
      return;
    }
  }
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->probe_id != ack.probe_id || it->expires_ms <= now) continue;
    PendingKind kind = it->kind;
    pending_.erase(it);
    if (kind == PendingKind::kJoin) {
      joined_ = true;
      join_backoff_ms_ = config_.join_retry_ms;
      // A seed we did not know as live: take its member list.
      if (!sender_was_live && !sync_.active) {
        StartSync(now, DestOf(table_.at(table_.Find(p.sender->name))), out);
        // A newcomer's view is the least complete (the seed may itself be
        // new, in a cluster starting all at once): its next syncs, with
        // random members, come early, 5 rounds later, then 10, 20... until
        // they reach the periodic interval.
        if (config_.sync_interval_ms > 0) {
          early_sync_ms_ = 5ull * config_.gossip_interval_ms;
          next_sync_ms_ = std::min(next_sync_ms_, now + early_sync_ms_);
        }
      }
    }
    return;
  }
  ++stats_.late_acks;
}

// ---- Joining and healing -------------------------------------------------------

void Membership::TickJoin(uint64_t now, Actions* out) {
  if (joined_ && ClusterSize() == 1) {
    // Everyone we knew is gone: back to the seeds.
    joined_ = false;
    join_backoff_ms_ = config_.join_retry_ms;
    next_join_ms_ = now;
  }
  if (config_.seeds.empty()) return;
  if (!joined_) {
    if (now < next_join_ms_) return;
    for (const std::string& seed : config_.seeds) {
      if (seed == self_->gossip_addr) continue;
      SendPingTo(now, Dest{seed, "", 0}, 0, MemberState::kAlive, PendingKind::kJoin, out);
    }
    next_join_ms_ = now + Jittered(join_backoff_ms_, 20);
    join_backoff_ms_ = std::min<uint64_t>(join_backoff_ms_ * 2, config_.join_retry_max_ms);
    return;
  }
  if (config_.seed_rejoin_ms > 0 && now >= next_seed_ms_) {
    next_seed_ms_ = now + uint64_t{config_.seed_rejoin_ms} * ScaleFactor(ClusterSize());
    const std::string& seed = config_.seeds[Uniform(config_.seeds.size())];
    if (seed != self_->gossip_addr) {
      SendPingTo(now, Dest{seed, "", 0}, 0, MemberState::kAlive, PendingKind::kJoin, out);
    }
  }
}

// A random dead member is pinged now and then: if it was only cut off, it
// hears (from the ping's target_state) that we think it dead and refutes, and
// the partition heals from both sides.
void Membership::Reconnect(uint64_t now, Actions* out) {
  std::vector<uint32_t> dead;
  for (const auto& [at, slot] : reap_at_) {
    if (table_.at(slot).state == MemberState::kDead) dead.push_back(slot);
  }
  if (dead.empty()) return;
  const MemberRecord& m = table_.at(dead[Uniform(dead.size())]);
  SendPingTo(now, DestOf(m), m.incarnation, m.state, PendingKind::kReconnect, out);
}

// ---- Probing -------------------------------------------------------------------

void Membership::RebuildProbeOrder() {
  probe_order_.clear();
  for (uint32_t s = 0; s < table_.slot_count(); ++s) {
    if (table_.InUse(s) && IsLive(table_.at(s))) probe_order_.push_back(s);
  }
  for (size_t i = probe_order_.size(); i > 1; --i) {
    std::swap(probe_order_[i - 1], probe_order_[Uniform(i)]);
  }
  probe_pos_ = 0;
}

void Membership::TickProbe(uint64_t now, Actions* out) {
  if (probe_.active && !probe_.acked && !probe_.indirect_sent &&
      now >= probe_.start_ms + config_.probe_timeout_ms) {
    probe_.indirect_sent = true;
    uint32_t slot = table_.Find(probe_.target);
    if (slot != MemberTable::kNone) {
      const MemberRecord& t = table_.at(slot);
      PingReq req{probe_.probe_id, t.info->name,  t.info->gossip_addr,
                  t.boot,          t.incarnation, t.state};
      for (uint32_t helper : RandomMembers(config_.indirect_checks, slot, now, false)) {
        ++stats_.indirect_probes;
        Send(DestOf(table_.at(helper)), req, true, out);
      }
    }
  }
  if (probe_.active && now >= probe_.start_ms + config_.probe_interval_ms) {
    probe_.active = false;
    if (!probe_.acked) ProbeFailed(now, out);
  }
  if (now >= next_probe_ms_) {
    next_probe_ms_ += config_.probe_interval_ms;
    if (next_probe_ms_ <= now) next_probe_ms_ = now + config_.probe_interval_ms;  // we slept
    StartProbe(now, out);
  }
}

void Membership::StartProbe(uint64_t now, Actions* out) {
  for (size_t tries = 0; tries <= probe_order_.size() + 1; ++tries) {
    if (probe_pos_ >= probe_order_.size()) {
      RebuildProbeOrder();
      if (probe_order_.empty()) return;
    }
    uint32_t slot = probe_order_[probe_pos_++];
    if (!table_.InUse(slot) || !IsLive(table_.at(slot))) continue;
    const MemberRecord& m = table_.at(slot);
    probe_ = Probe{true, false, false, slot, m.info->name, m.incarnation, Random(), now};
    ++stats_.probes;
    Send(DestOf(m), Ping{probe_.probe_id, m.incarnation, m.state}, true, out);
    return;
  }
}

void Membership::ProbeFailed(uint64_t now, Actions* out) {
  uint32_t slot = table_.Find(probe_.target);
  if (slot == MemberTable::kNone) return;
  MemberRecord& m = table_.at(slot);
  if (!IsLive(m) || m.incarnation != probe_.incarnation) return;
  // Already suspect (others told us): our own failed probe is an independent
  // confirmation, which shortens the timeout everywhere it is heard.
  ++stats_.suspicions;
  Apply(now, MemberUpdate{MemberState::kSuspect, m.incarnation, m.info, 0, self_->name},
        Origin::kDirect, out);
}

std::vector<uint32_t> Membership::RandomMembers(size_t k, uint32_t exclude, uint64_t now,
                                                bool recent_dead) {
  std::vector<uint32_t> chosen;
  const uint32_t n = table_.slot_count();
  if (k == 0 || n == 0) return chosen;
  auto eligible = [&](uint32_t s) {
    if (s == exclude || !table_.InUse(s)) return false;
    const MemberRecord& m = table_.at(s);
    if (IsLive(m)) return true;
    return recent_dead && m.state == MemberState::kDead &&
           now < m.state_change_ms + config_.gossip_to_dead_ms;
  };
  auto taken = [&](uint32_t s) {
    return std::find(chosen.begin(), chosen.end(), s) != chosen.end();
  };
  // Sampling slots at random is uniform and O(k) while most slots hold live
  // members; a scan from a random start finishes the job when they do not.
  for (size_t tries = 0; tries < 3 * k + 8 && chosen.size() < k; ++tries) {
    uint32_t s = static_cast<uint32_t>(Uniform(n));
    if (eligible(s) && !taken(s)) chosen.push_back(s);
  }
  if (chosen.size() < k) {
    uint32_t start = static_cast<uint32_t>(Uniform(n));
    for (uint32_t i = 0; i < n && chosen.size() < k; ++i) {
      uint32_t s = (start + i) % n;
      if (eligible(s) && !taken(s)) chosen.push_back(s);
    }
  }
  return chosen;
}

// ---- Gossip rounds, leave ------------------------------------------------------------

void Membership::GossipRound(uint64_t now, size_t fanout, Actions* out) {
  for (uint32_t slot : RandomMembers(fanout, MemberTable::kNone, now, true)) {
    Send(DestOf(table_.at(slot)), Gossip{root_, entry_count_, hlc_}, true, out);
  }
}

void Membership::PushState(uint64_t now, Actions* out) {
  if (!started_ || self_state_ == MemberState::kLeft) return;
  GossipRound(now, config_.gossip_fanout, out);
}

void Membership::Leave(uint64_t now, Actions* out) {
  if (!started_) Start(now);
  if (self_state_ == MemberState::kLeft) return;
  self_state_ = MemberState::kLeft;
  probe_.active = false;
  sync_.active = false;
  queue_.Enqueue(SelfUpdate());
  GossipRound(now, std::max<size_t>(config_.gossip_fanout, 3), out);
  next_gossip_ms_ = now + Jittered(config_.gossip_interval_ms, config_.gossip_jitter_pct);
}

// ---- Member-list sync ---------------------------------------------------------------

void Membership::StartSync(uint64_t now, Dest peer, Actions* out) {
  sync_ = SyncState{true, std::move(peer), 0, now + config_.probe_interval_ms, 0};
  Send(sync_.peer, SyncRequest{0}, false, out);
}

void Membership::TickSync(uint64_t now, Actions* out) {
  if (sync_.active && now >= sync_.deadline_ms) {
    if (++sync_.retries > kSyncRetries) {
      sync_.active = false;
    } else {
      sync_.deadline_ms = now + config_.probe_interval_ms;
      Send(sync_.peer, SyncRequest{sync_.cursor}, false, out);
    }
  }
  if (config_.sync_interval_ms > 0 && now >= next_sync_ms_) {
    uint64_t interval = uint64_t{config_.sync_interval_ms} * ScaleFactor(ClusterSize());
    if (early_sync_ms_ > 0) {
      early_sync_ms_ *= 2;
      if (early_sync_ms_ < interval) {
        interval = early_sync_ms_;
      } else {
        early_sync_ms_ = 0;
      }
    }
    next_sync_ms_ = now + interval;
    if (sync_.active) return;
    std::vector<uint32_t> peer = RandomMembers(1, MemberTable::kNone, now, false);
    if (peer.empty() || table_.at(peer[0]).state != MemberState::kAlive) return;
    StartSync(now, DestOf(table_.at(peer[0])), out);
  }
}

// One page of our live members, from slot `cursor` on, filled to the budget.
// Stateless: the requester walks the cursor. Members that come and go between
// pages may be missed or sent twice; the next sync or gossip mends that.
void Membership::ServeSync(const Dest& to, uint32_t cursor, Actions* out) {
  ++stats_.sync_pages_served;
  // Sized with the largest cursor, which is filled in at the end.
  Packet page = MakePacket(to, SyncPage{UINT32_MAX, false});
  size_t budget = config_.max_packet_bytes - EncodedSizeWithoutUpdates(page) - kUpdateListHeaderMax;
  std::vector<MemberUpdate> records;
  uint32_t s = cursor;
  size_t used = 0;
  for (; s < table_.slot_count() && records.size() < kMaxUpdatesPerPacket; ++s) {
    if (!table_.InUse(s) || !IsLive(table_.at(s))) continue;
    const MemberRecord& m = table_.at(s);
    MemberUpdate u{m.state, m.incarnation, m.info, m.boot, {}};
    if (m.state == MemberState::kSuspect) {
      u.boot = 0;
      u.from = self_->name;
    }
    size_t n = EncodedSize(u);
    if (used + n > budget) break;
    used += n;
    records.push_back(std::move(u));
  }
  page.body = SyncPage{s, s >= table_.slot_count()};
  page.updates = std::move(records);
  Emit(to.addr, std::move(page), out);
}

}  // namespace gossync::core
