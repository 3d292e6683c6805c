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

// RunUntil's private handles. They live on the heap because their memory must outlive
// RunUntil's frame until both close callbacks have run.
struct RunUntilState {
  uv_timer_t deadline;
  uv_prepare_t check;
  const std::function<bool()>* done = nullptr;
  bool finished = false;
  bool expired = false;
  int open_handles = 2;
};

void FreeRunUntilState(uv_handle_t* h) noexcept {
  auto* st = static_cast<RunUntilState*>(h->data);
  if (--st->open_handles == 0) delete st;
}

}  // namespace

bool Loop::RunUntil(const std::function<bool()>& done, uint64_t timeout_ms) {
  if (done()) return true;
  // The cached loop time may be stale (blocking work ran on this thread since the last
  // iteration); the deadline counts from now.
  uv_update_time(loop_.get());
  auto* st = new RunUntilState();
  st->done = &done;
  st->deadline.data = st;
  st->check.data = st;
  uv_timer_init(loop_.get(), &st->deadline);
  uv_prepare_init(loop_.get(), &st->check);
  // The deadline both bounds the wait and keeps the loop alive.
  uv_timer_start(
      &st->deadline,
      [](uv_timer_t* t) noexcept {
        auto* s = static_cast<RunUntilState*>(t->data);
        s->expired = true;
        uv_stop(t->loop);
      },
      timeout_ms, 0);
  // A prepare callback runs in every iteration just before the loop would block for
  // I/O: checking there (not after uv_run returns) means a condition made true by a
  // timer callback does not wait for the next event. uv_stop makes the poll return
  // at once.
  uv_prepare_start(&st->check, [](uv_prepare_t* p) noexcept {
    auto* s = static_cast<RunUntilState*>(p->data);
    if ((*s->done)()) {
      s->finished = true;
      uv_stop(p->loop);
    }
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(&st->check));
  while (!st->finished && !st->expired) {
    uv_run(loop_.get(), UV_RUN_DEFAULT);
    if (!st->finished && done()) st->finished = true;
    if (!uv_loop_alive(loop_.get())) break;  // cannot happen while the deadline is armed
  }
  const bool ok = st->finished || done();
  uv_close(reinterpret_cast<uv_handle_t*>(&st->deadline), &FreeRunUntilState);
  uv_close(reinterpret_cast<uv_handle_t*>(&st->check), &FreeRunUntilState);
  // Let the close callbacks run now rather than at the next Run.
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
