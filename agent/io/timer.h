// Timer: one-shot and repeating timers on the loop (uv_timer_t). Lifetime: handle.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "agent/io/handle.h"

namespace gossync::io {

// Loop thread only (handle.h rule 7).
class Timer final : public Handle {
 public:
  using Callback = std::function<void()>;

  // Creates a stopped timer on `loop`. Loop thread.
  static std::unique_ptr<Timer> Create(uv_loop_t* loop);
  ~Timer() override;

  // Arms the timer: `cb` runs once after `delay_ms`. Re-arms if already armed (the old
  // callback is dropped). Calling Start from inside the callback is allowed.
  // REQUIRES: is_open().
  void Start(uint64_t delay_ms, Callback cb) { Start(delay_ms, 0, std::move(cb)); }
  // Arms the timer: `cb` runs after `delay_ms` and then every `repeat_ms` (0 = once).
  // Intervals are measured from when each callback was due, as libuv does. The delay
  // counts from the loop's cached time (uv_now, updated at the start of each
  // iteration); after blocking work on the loop thread, call uv_update_time first.
  void Start(uint64_t delay_ms, uint64_t repeat_ms, Callback cb);
  // Disarms the timer; the callback is not run until the next Start. Idempotent.
  void Stop();
  // True while armed (a one-shot timer disarms itself before its callback runs).
  bool active() const;

 private:
  explicit Timer(uv_timer_t* t);
  static void OnFire(uv_timer_t* t) noexcept;

  // Shared so that a callback that re-arms or destroys the timer does not destroy the
  // std::function it is running in.
  std::shared_ptr<Callback> cb_;
};

}  // namespace gossync::io
