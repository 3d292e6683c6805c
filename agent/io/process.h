// Process: runs a shell command with bytes on its stdin, reports how it ended, and kills
// it (with everything it started) after a timeout. Lifetime: handle.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/io/handle.h"
#include "agent/io/timer.h"
#include "gossync/status.h"

namespace gossync::io {

struct ProcessOptions {
  std::string command;         // run as: /bin/sh -c COMMAND
  std::string stdin_bytes;     // written to the child's stdin, which is then closed;
                               // empty: stdin is /dev/null
  uint64_t timeout_ms = 0;     // 0: none; else SIGKILL to the child's process group
  std::string cwd;             // working directory; empty: ours
  bool inherit_output = true;  // stdout/stderr go to ours (the journal); else /dev/null
};

struct ProcessExit {
  int64_t exit_code = -1;  // the exit status when it exited by itself, else -1
  int term_signal = 0;     // the signal that ended it, or 0
  bool timed_out = false;  // we killed it because timeout_ms passed
  bool success() const { return exit_code == 0 && term_signal == 0; }
};

// A child process in its own session and process group (setsid), so that the timeout
// and Kill reach whatever it started too. Loop thread only (handle.h rule 7).
//
// REQUIRES: SIGPIPE ignored (IgnoreSigpipe in signal.h): a child that exits without
// reading its stdin must not kill the daemon.
class Process final : public Handle {
 public:
  using ExitCallback = std::function<void(const ProcessExit&)>;

  // Starts the command. `on_exit` runs once, on the loop, when the child has ended and
  // been reaped. Errors (fork failed, cwd missing) are returned here, with no callback.
  static Result<std::unique_ptr<Process>> Spawn(uv_loop_t* loop, ProcessOptions options,
                                                ExitCallback on_exit);
  // Close() or destruction while the child runs: SIGKILL to its group, no callback;
  // the handle lives on, detached, until the child is reaped (no zombie is left), and
  // this wrapper is kClosed at once.
  ~Process() override;

  int pid() const { return pid_; }
  bool running() const { return running_; }
  // Sends `signum` to the child's process group. No-op once it has exited.
  void Kill(int signum);

 private:
  class StdinStream;
  Process(uv_process_t* h, ExitCallback on_exit);
  void OnClose() override;
  static void OnExit(uv_process_t* h, int64_t exit_status, int term_signal) noexcept;

  std::shared_ptr<ExitCallback> on_exit_;
  std::unique_ptr<StdinStream> stdin_;
  std::unique_ptr<Timer> timer_;
  int pid_ = 0;
  bool running_ = false;
  bool timed_out_ = false;
};

}  // namespace gossync::io
