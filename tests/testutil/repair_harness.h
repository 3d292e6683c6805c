// Two repair sessions back to back over a simulated connection, through the
// real codec and framing (tests only). Each side is an Endpoint: a session,
// a MemDriver executing its local actions, and a FrameDecoder for what the
// peer sent. Link::Run delivers everything in flight, both ways at once, one
// "flight" (a one-way trip) at a time, so the number of flights is the
// length of the critical path; local work completes within a flight.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agent/core/repair_session.h"
#include "agent/wire/frame.h"
#include "tests/testutil/mem_dataset.h"

namespace gossync::testutil {

struct Traffic {
  uint64_t frames = 0;
  uint64_t bytes = 0;                                          // frame bytes, headers included
  uint64_t content_bytes = 0;                                  // data of BLOCK messages
  std::array<uint64_t, core::kLastMessageType + 2> by_type{};  // frames per message type
  uint64_t overhead() const { return bytes - content_bytes; }
};

class Endpoint {
 public:
  using Actions = core::RepairSession::Actions;

  Endpoint(MemNode* node, core::RepairOptions options,
           size_t max_frame_bytes = core::kDefaultMaxFrameBytes);

  // Executes `actions` (Send: encoded into the outbox), then every
  // completion they queue, recursively.
  void Handle(Actions actions, int64_t now_ms);
  // Bytes from the peer: frames are decoded and given to the session.
  void Receive(std::span<const uint8_t> bytes, int64_t now_ms);
  // The peer closed the connection (after the bytes already received).
  void PeerClosed(int64_t now_ms);

  MemNode* node;
  MemDriver driver;
  std::unique_ptr<core::RepairSession> session;
  wire::FrameDecoder decoder;
  std::vector<uint8_t> outbox;  // sent, not yet delivered
  Traffic sent;
  std::vector<core::RepairMessage> received;  // every message given to the session
  std::optional<core::repair::Finished> finished;
  std::optional<core::repair::Abort> aborted;
  bool ended() const { return finished || aborted; }
  // Called with each decoded frame before the session sees it; returning
  // true cuts the connection there (Link::Run stops).
  std::function<bool(const core::RepairMessage&)> on_frame;
  bool cut = false;
  bool keep_received = false;  // fill `received`

 private:
  bool draining_ = false;
};

struct LinkOptions {
  bool dry_run = false;  // the initiator asks for a dry run
  uint32_t block_size = 4096;
  bool root_hint = true;  // the initiator knows the responder's root (gossip)
  size_t max_frame_bytes = core::kDefaultMaxFrameBytes;
  // Both sides' (the puller's window and the server's bound must agree).
  size_t max_in_flight_blocks = core::kMaxInFlightBlocks;
  size_t max_active_pulls = 64;
  size_t max_active_large_pulls = 4;
  // Last say on each side's options (tombstone ttl, catch-up mode, ...).
  std::function<void(core::RepairOptions&)> tune_a = nullptr;
  std::function<void(core::RepairOptions&)> tune_b = nullptr;
  uint64_t max_listed_blocks = uint64_t{1} << 18;
  size_t max_queued_pulls = 32768;
};

class Link {
 public:
  // `a` initiates, `b` responds. Both must outlive the link.
  Link(MemNode& a, MemNode& b, LinkOptions options = {});

  // Delivers flights until both sessions ended, the connection was cut, or
  // nothing moves (stalled: a bug). Returns the number of flights.
  int Run(int max_flights = 1'000'000);

  Endpoint& a() { return *a_; }
  Endpoint& b() { return *b_; }
  bool stalled() const { return stalled_; }
  bool cut() const { return a_->cut || b_->cut; }
  int flights() const { return flights_; }
  // The first flight that delivered an ENTRIES message (0: none).
  int first_entries_flight() const { return first_entries_flight_; }
  uint64_t overhead_bytes() const { return a_->sent.overhead() + b_->sent.overhead(); }

 private:
  std::unique_ptr<Endpoint> a_, b_;
  int64_t now_ = 1000;
  int flights_ = 0;
  int first_entries_flight_ = 0;
  bool started_ = false;
  bool stalled_ = false;
};

// Options for one side of a session between these two nodes.
core::RepairOptions SessionOptions(const MemNode& self, const MemNode& peer, bool initiator,
                                   uint32_t block_size = 4096);

}  // namespace gossync::testutil
