// The work pool: QueueWork (uv_queue_work) and Strand (one-at-a-time FIFO work, for the
// SQLite index, which must be used by one thread at a time).
//
// Both run `work` on libuv's thread pool (UV_THREADPOOL_SIZE threads, default 4, shared
// with everything else on the pool) and then `after` on the loop thread. Work that has
// started cannot be stopped: the loop must keep running until it ends (Loop's
// destructor does). `work` and `after` must not throw (handle.h rule 8).
#pragma once

#include <uv.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>

#include "gossync/status.h"

namespace gossync::io {

// Runs `work` on a pool thread, then `after` (if set) on the loop thread. `work` must
// only touch what it owns or what is safe across threads; the result travels back
// through state the two functions share (typically a shared_ptr both capture).
// Call from the loop thread. Fails only for a loop that is closing.
Status QueueWork(uv_loop_t* loop, std::function<void()> work, std::function<void()> after);

// Serialises work on the pool: items run one at a time, in the order posted, each on
// some pool thread, and item N's `after` runs on the loop before item N+1's `work`
// starts. Consecutive items may run on different pool threads; each one sees every
// effect of the items before it (the hand-offs go through the loop).
//
// Shutdown: Drain(done) stops accepting items and lets every item already posted run
// to completion, work and after, then calls `done`: nothing posted is lost (an index
// write posted before SIGTERM still commits). Destroying the Strand instead discards
// the items that have not started (neither work nor after runs) and drops the `after`
// of the one running, which still finishes on the pool; so work must not reference
// objects that die with the Strand's owner unless the owner Drains first.
//
// Loop thread only (handle.h rule 7), except `work`, which runs on the pool.
class Strand {
 public:
  explicit Strand(uv_loop_t* loop);
  ~Strand();
  Strand(const Strand&) = delete;
  Strand& operator=(const Strand&) = delete;

  // Queues an item. kAborted once Drain was called.
  Status Post(std::function<void()> work, std::function<void()> after = nullptr);
  // Items posted whose `after` has not yet run (the running one included).
  size_t pending() const;
  // Stops accepting items; `done` runs on the loop once every posted item has finished
  // (at once, before Drain returns, if none is pending). Call once.
  void Drain(std::function<void()> done);
  bool draining() const;

 private:
  struct Item {
    std::function<void()> work;
    std::function<void()> after;
  };
  struct State;
  struct Job;
  static void Submit(const std::shared_ptr<State>& state);
  static void RunWork(uv_work_t* req) noexcept;
  static void AfterWork(uv_work_t* req, int status) noexcept;

  std::shared_ptr<State> state_;
};

}  // namespace gossync::io
