// Signals on the loop: SIGHUP (reload), SIGTERM / SIGINT (drain and exit). Lifetime:
// handle.h.
#pragma once

#include <functional>
#include <memory>

#include "agent/io/handle.h"
#include "gossync/status.h"

namespace gossync::io {

// Delivers one signal number to a callback on the loop thread (uv_signal_t), so the
// handler may do anything, unlike a raw signal handler. Several deliveries of the same
// signal before the loop runs may coalesce into one callback. Loop thread only.
class SignalHandler final : public Handle {
 public:
  using Callback = std::function<void(int signum)>;

  // Starts watching `signum` (e.g. SIGHUP). Loop thread.
  static Result<std::unique_ptr<SignalHandler>> Create(uv_loop_t* loop, int signum, Callback cb);
  ~SignalHandler() override;  // restores the default disposition once no handler is left

  int signum() const { return signum_; }

 private:
  SignalHandler(uv_signal_t* h, int signum, Callback cb);
  static void OnSignal(uv_signal_t* h, int signum) noexcept;

  int signum_;
  std::shared_ptr<Callback> cb_;
};

// Sets SIGPIPE to "ignore" for the whole process, so that writing to a socket or pipe
// whose reader has gone returns EPIPE (reported as an error by Stream) instead of
// killing the process. The daemon calls it once at start-up, before any Stream or
// Process is used; libuv does not do it. Any thread; idempotent.
void IgnoreSigpipe();

}  // namespace gossync::io
