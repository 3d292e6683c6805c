#include "agent/io/process.h"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include "agent/io/log.h"
#include "agent/io/stream.h"
#include "agent/io/timer.h"
#include "agent/io/uv_status.h"

namespace gossync::io {

// The parent's end of the child's stdin (libuv makes it a socketpair, so Shutdown
// gives the child a clean EOF once everything is written).
class Process::StdinStream final : public Stream {
 public:
  explicit StdinStream(uv_pipe_t* h)
      : Stream(reinterpret_cast<uv_stream_t*>(h), &FreeHandle<uv_pipe_t>, "child stdin") {}
  ~StdinStream() override { Close(); }
  uv_stream_t* uv_stream() const { return stream(); }
};

Process::Process(uv_process_t* h, ExitCallback on_exit)
    : Handle(reinterpret_cast<uv_handle_t*>(h), &FreeHandle<uv_process_t>),
      on_exit_(std::make_shared<ExitCallback>(std::move(on_exit))) {}

Process::~Process() { Close(); }

Result<std::unique_ptr<Process>> Process::Spawn(uv_loop_t* loop, ProcessOptions options,
                                                ExitCallback on_exit) {
  std::unique_ptr<StdinStream> in;
  if (!options.stdin_bytes.empty()) {
    auto* p = new uv_pipe_t;
    int rc = uv_pipe_init(loop, p, 0);
    if (rc < 0) {
      delete p;
      return UvError("pipe init", rc);
    }
    in = std::make_unique<StdinStream>(p);
  }
  uv_stdio_container_t stdio[3] = {};
  if (in) {
    stdio[0].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE);
    stdio[0].data.stream = in->uv_stream();
  } else {
    stdio[0].flags = UV_IGNORE;
  }
  for (int fd : {1, 2}) {
    if (options.inherit_output) {
      stdio[fd].flags = UV_INHERIT_FD;
      stdio[fd].data.fd = fd;
    } else {
      stdio[fd].flags = UV_IGNORE;
    }
  }
  char sh[] = "/bin/sh";
  char dash_c[] = "-c";
  char* args[] = {sh, dash_c, options.command.data(), nullptr};
  uv_process_options_t opts{};
  opts.exit_cb = &Process::OnExit;
  opts.file = sh;
  opts.args = args;
  opts.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  // DETACHED makes the child call setsid(): its own process group, which the timeout
  // kills as a whole. libuv still reports its exit.
  opts.flags = UV_PROCESS_DETACHED;
  opts.stdio_count = 3;
  opts.stdio = stdio;

  auto* h = new uv_process_t;
  int rc = uv_spawn(loop, h, &opts);
  // uv_spawn initialises the handle even when it fails, so it is closed either way.
  std::unique_ptr<Process> proc(new Process(h, std::move(on_exit)));
  if (rc < 0) return UvError("spawn /bin/sh -c \"" + options.command + "\"", rc);
  proc->pid_ = h->pid;
  proc->running_ = true;
  Log().debug("spawned pid {}: {}", proc->pid_, options.command);

  if (in) {
    proc->stdin_ = std::move(in);
    StdinStream* s = proc->stdin_.get();
    // A child that exits without reading makes these fail (EPIPE); that is its business,
    // its exit status tells the story.
    if (s->Write(options.stdin_bytes).ok()) {
      (void)s->Shutdown([s](const Status&) { s->Close(); });
    }
  }
  if (options.timeout_ms > 0) {
    proc->timer_ = Timer::Create(loop);
    Process* self = proc.get();  // the timer dies with the process wrapper
    proc->timer_->Start(options.timeout_ms, [self] {
      if (!self->running_) return;
      Log().debug("pid {} timed out; killing its process group", self->pid_);
      self->timed_out_ = true;
      self->Kill(SIGKILL);
    });
  }
  return proc;
}

void Process::Kill(int signum) {
  // pid 0 would signal our own process group.
  if (!running_ || pid_ <= 0) return;
  if (kill(-pid_, signum) != 0) {
    // The group may be gone already while libuv has not reaped the leader yet.
    Log().debug("kill -{} -{}: {}", signum, pid_, std::strerror(errno));
  }
}

void Process::OnClose() {
  if (timer_) timer_->Close();
  if (stdin_) stdin_->Close();
  if (running_) {
    Kill(SIGKILL);
    running_ = false;
    // Keep the handle registered with libuv so the child is reaped; OnExit closes it.
    Release();
  }
}

void Process::OnExit(uv_process_t* h, int64_t exit_status, int term_signal) noexcept {
  auto* owner = static_cast<Handle*>(h->data);
  if (owner == nullptr) {
    // Released by OnClose: the owner is gone, the child is reaped; free the handle.
    uv_close(reinterpret_cast<uv_handle_t*>(h), &FreeHandle<uv_process_t>);
    return;
  }
  Process* self = OpenOwner<Process>(h);
  if (self == nullptr) return;
  self->running_ = false;
  if (self->timer_) self->timer_->Close();
  ProcessExit result;
  result.term_signal = term_signal;
  result.exit_code = term_signal == 0 ? exit_status : -1;
  result.timed_out = self->timed_out_;
  Log().debug("pid {} ended: exit {} signal {}{}", self->pid_, result.exit_code, term_signal,
              result.timed_out ? " (timed out)" : "");
  std::shared_ptr<ExitCallback> cb = self->on_exit_;
  if (*cb) (*cb)(result);
}

}  // namespace gossync::io
