#include "tests/testutil/repair_harness.h"

#include "agent/wire/repair_codec.h"

namespace gossync::testutil {

core::RepairOptions SessionOptions(const MemNode& self, const MemNode& peer, bool initiator,
                                   uint32_t block_size) {
  core::RepairOptions o;
  o.initiator = initiator;
  o.local_name = self.name();
  o.peer_name = peer.name();
  o.hlc = self.hlc();
  o.block_size = block_size;
  return o;
}

Endpoint::Endpoint(MemNode* n, core::RepairOptions options, size_t max_frame_bytes)
    : node(n),
      driver(&n->data()),
      session(std::make_unique<core::RepairSession>(std::move(options), &n->data())),
      decoder(max_frame_bytes) {}

void Endpoint::Handle(Actions actions, int64_t now_ms) {
  for (core::RepairAction& action : actions) {
    if (auto* s = std::get_if<core::repair::Send>(&action)) {
      std::vector<uint8_t> frame = wire::EncodeMessageFrame(s->message);
      ++sent.frames;
      sent.bytes += frame.size();
      ++sent.by_type[s->message.index()];
      if (auto* b = std::get_if<core::BlockMsg>(&s->message)) sent.content_bytes += b->data.size();
      outbox.insert(outbox.end(), frame.begin(), frame.end());
    } else if (auto* f = std::get_if<core::repair::Finished>(&action)) {
      finished = std::move(*f);
    } else if (auto* a = std::get_if<core::repair::Abort>(&action)) {
      aborted = std::move(*a);
    } else {
      GOSSYNC_CHECK(!ended());  // nothing follows the end
      GOSSYNC_CHECK(driver.Execute(action));
    }
  }
  if (ended()) {
    driver.DropSession();
    return;
  }
  if (draining_) return;  // the outer call drains; no recursion per completion
  draining_ = true;
  while (!driver.completions().empty() && !ended()) {
    MemDriver::Completion c = std::move(driver.completions().front());
    driver.completions().pop_front();
    Handle(c(*session, now_ms), now_ms);
  }
  draining_ = false;
}

void Endpoint::Receive(std::span<const uint8_t> bytes, int64_t now_ms) {
  if (ended() || cut) return;
  std::vector<std::vector<uint8_t>> frames;
  const Status fed = decoder.Feed(bytes, &frames);
  for (const std::vector<uint8_t>& frame : frames) {
    if (ended()) return;
    auto m = wire::DecodeMessage(frame, decoder.max_frame_bytes());
    if (!m.ok()) {
      Handle(session->OnProtocolError(now_ms, wire::DecodeErrorCounter(m.status()),
                                      m.status().message()),
             now_ms);
      return;
    }
    if (on_frame && on_frame(*m)) {
      cut = true;
      return;
    }
    if (keep_received) received.push_back(*m);
    Handle(session->OnMessage(now_ms, std::move(m).value()), now_ms);
  }
  if (!fed.ok() && !ended()) {
    const char* counter = fed.code() == Code::kLimitExceeded ? "frame_too_large" : "malformed";
    Handle(session->OnProtocolError(now_ms, counter, fed.message()), now_ms);
  }
}

void Endpoint::PeerClosed(int64_t now_ms) {
  if (ended()) return;
  const Status cut_short = decoder.Finish();
  if (!cut_short.ok()) {
    Handle(session->OnProtocolError(now_ms, "truncated", cut_short.message()), now_ms);
  } else {
    Handle(session->OnPeerClosed(now_ms), now_ms);
  }
}

Link::Link(MemNode& a, MemNode& b, LinkOptions options) {
  core::RepairOptions oa = SessionOptions(a, b, true, options.block_size);
  core::RepairOptions ob = SessionOptions(b, a, false, options.block_size);
  oa.dry_run = options.dry_run;
  for (core::RepairOptions* o : {&oa, &ob}) {
    o->max_in_flight_blocks = options.max_in_flight_blocks;
    o->max_active_pulls = options.max_active_pulls;
    o->max_active_large_pulls = options.max_active_large_pulls;
    o->max_listed_blocks = options.max_listed_blocks;
    o->max_queued_pulls = options.max_queued_pulls;
  }
  if (options.root_hint) oa.peer_root = b.data().Root();
  if (options.tune_a) options.tune_a(oa);
  if (options.tune_b) options.tune_b(ob);
  a_ = std::make_unique<Endpoint>(&a, std::move(oa), options.max_frame_bytes);
  b_ = std::make_unique<Endpoint>(&b, std::move(ob), options.max_frame_bytes);
}

int Link::Run(int max_flights) {
  if (!started_) {
    started_ = true;
    a_->Handle(a_->session->Start(now_), now_);
    b_->Handle(b_->session->Start(now_), now_);
  }
  while (flights_ < max_flights && !(a_->ended() && b_->ended())) {
    std::vector<uint8_t> ab = std::move(a_->outbox), ba = std::move(b_->outbox);
    a_->outbox.clear();
    b_->outbox.clear();
    if (ab.empty() && ba.empty()) {
      // Nothing in flight: a side that ended has closed the connection.
      if (a_->ended()) {
        b_->PeerClosed(now_);
      } else if (b_->ended()) {
        a_->PeerClosed(now_);
      } else {
        stalled_ = true;
      }
      if (!(a_->ended() && b_->ended())) stalled_ = true;
      break;
    }
    ++flights_;
    ++now_;
    // Whether this flight carries the first ENTRIES: none was sent before it.
    const bool had_entries = a_->sent.by_type[3] + b_->sent.by_type[3] > 0;
    b_->Receive(ab, now_);
    a_->Receive(ba, now_);
    if (first_entries_flight_ == 0 && had_entries) first_entries_flight_ = flights_;
    if (cut()) {
      a_->PeerClosed(now_);
      b_->PeerClosed(now_);
      break;
    }
    if (a_->ended() && a_->outbox.empty()) b_->PeerClosed(now_);
    if (b_->ended() && b_->outbox.empty()) a_->PeerClosed(now_);
  }
  return flights_;
}

}  // namespace gossync::testutil
