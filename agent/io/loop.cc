#include "agent/io/loop.h"

#include <cstdio>

#include "agent/io/uv_status.h"

namespace gossync::io {

Loop::Loop() : loop_(std::make_unique<uv_loop_t>()) {}

Result<std::unique_ptr<Loop>> Loop::Create() {
  std::unique_ptr<Loop> loop(new Loop());
  int rc = uv_loop_init(loop->loop_.get());
  if (rc < 0) {
    loop->loop_.reset();  // never initialised: nothing to close
    return UvError("uv_loop_init", rc);
  }
  return loop;
}

void Loop::Run() { uv_run(loop_.get(), UV_RUN_DEFAULT); }

namespace {

struct Deadline {
  uv_timer_t timer;
  bool expired = false;
};

}  // namespace

bool Loop::RunUntil(const std::function<bool()>& done, uint64_t timeout_ms) {
  if (done()) return true;
  // A private timer both bounds the wait and guarantees UV_RUN_ONCE wakes up. It lives
  // on the heap because its memory must outlive this frame until the close callback.
  auto* deadline = new Deadline();
  uv_timer_init(loop_.get(), &deadline->timer);
  deadline->timer.data = deadline;
  uv_timer_start(
      &deadline->timer,
      [](uv_timer_t* t) noexcept { static_cast<Deadline*>(t->data)->expired = true; },
      timeout_ms, 0);
  bool ok = false;
  while (true) {
    uv_run(loop_.get(), UV_RUN_ONCE);
    if (done()) {
      ok = true;
      break;
    }
    if (deadline->expired) break;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline->timer), [](uv_handle_t* h) noexcept {
    delete static_cast<Deadline*>(h->data);
  });
  // Let the close callback run now rather than leaving it for the next Run.
  uv_run(loop_.get(), UV_RUN_NOWAIT);
  return ok;
}

Loop::~Loop() {
  if (loop_ == nullptr) return;
  uv_walk(
      loop_.get(),
      [](uv_handle_t* h, void*) noexcept {
        if (!uv_is_closing(h)) {
          std::fprintf(stderr, "gossync::io::Loop: a %s handle is still open at loop close\n",
                       uv_handle_type_name(uv_handle_get_type(h)));
          GOSSYNC_CHECK(uv_is_closing(h));
        }
      },
      nullptr);
  // Close callbacks and queued work (uv_queue_work cannot be abandoned) finish here.
  uv_run(loop_.get(), UV_RUN_DEFAULT);
  int rc = uv_loop_close(loop_.get());
  GOSSYNC_CHECK(rc == 0);
}

}  // namespace gossync::io
