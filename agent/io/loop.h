// Loop: an owned uv_loop_t that closes itself properly.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "gossync/status.h"

namespace gossync::io {

// Owns one uv_loop_t. Not copyable or movable. Thread: the thread that runs it.
class Loop {
 public:
  static Result<std::unique_ptr<Loop>> Create();

  // Runs the loop until no handle or request is active (uv_run UV_RUN_DEFAULT).
  void Run();
  // Runs the loop until `done()` is true or `timeout_ms` has passed (by uv_now);
  // returns done(). `done` is checked on the loop thread before each wait for I/O (so
  // a condition made true by any callback ends the run promptly); it only observes, the
  // progress must come from handles. Also stops on Stop(). Not from inside a callback
  // of this loop (uv_run is not reentrant).
  // Used for bounded shutdown ("drain sessions for at most 5 s") and by tests.
  bool RunUntil(const std::function<bool()>& done, uint64_t timeout_ms);
  // Makes Run() return after the current iteration. Loop thread.
  void Stop() { uv_stop(loop_.get()); }

  uv_loop_t* get() { return loop_.get(); }
  // The loop's cached time in ms (uv_now), updated at the start of each iteration.
  uint64_t now() { return uv_now(loop_.get()); }

  // REQUIRES: every wrapper on this loop has been destroyed or closed (handle.h rule
  // 9). Runs the loop until their close callbacks and any queued work have finished,
  // then uv_loop_close. A handle that is still open here is a leak: CHECK-fails, naming
  // its type.
  ~Loop();

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

 private:
  Loop();
  std::unique_ptr<uv_loop_t> loop_;
};

}  // namespace gossync::io
