#include "agent/io/signal.h"

#include <signal.h>

#include "agent/io/log.h"
#include "agent/io/uv_status.h"

namespace gossync::io {

Result<std::unique_ptr<SignalHandler>> SignalHandler::Create(uv_loop_t* loop, int signum,
                                                             Callback cb) {
  auto* h = new uv_signal_t;
  int rc = uv_signal_init(loop, h);
  if (rc < 0) {
    delete h;
    return UvError("signal init", rc);
  }
  std::unique_ptr<SignalHandler> handler(new SignalHandler(h, signum, std::move(cb)));
  rc = uv_signal_start(h, &SignalHandler::OnSignal, signum);
  if (rc < 0) return UvError("watch signal " + std::to_string(signum), rc);
  return handler;
}

SignalHandler::SignalHandler(uv_signal_t* h, int signum, Callback cb)
    : Handle(reinterpret_cast<uv_handle_t*>(h), &FreeHandle<uv_signal_t>),
      signum_(signum),
      cb_(std::make_shared<Callback>(std::move(cb))) {}

SignalHandler::~SignalHandler() { Close(); }

void SignalHandler::OnSignal(uv_signal_t* h, int signum) noexcept {
  SignalHandler* self = OpenOwner<SignalHandler>(h);
  if (self == nullptr) return;
  Log().debug("signal {}", signum);
  std::shared_ptr<Callback> cb = self->cb_;
  if (*cb) (*cb)(signum);
}

void IgnoreSigpipe() {
  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, nullptr);
}

}  // namespace gossync::io
