#include "agent/io/timer.h"

#include "gossync/status.h"

namespace gossync::io {

std::unique_ptr<Timer> Timer::Create(uv_loop_t* loop) {
  auto* t = new uv_timer_t;
  int rc = uv_timer_init(loop, t);
  GOSSYNC_CHECK(rc == 0);  // uv_timer_init cannot fail
  return std::unique_ptr<Timer>(new Timer(t));
}

Timer::Timer(uv_timer_t* t) : Handle(reinterpret_cast<uv_handle_t*>(t), &FreeHandle<uv_timer_t>) {}

Timer::~Timer() { Close(); }

void Timer::Start(uint64_t delay_ms, uint64_t repeat_ms, Callback cb) {
  GOSSYNC_CHECK(is_open());
  cb_ = std::make_shared<Callback>(std::move(cb));
  int rc = uv_timer_start(raw_as<uv_timer_t>(), &Timer::OnFire, delay_ms, repeat_ms);
  GOSSYNC_CHECK(rc == 0);  // fails only on a closing handle, excluded above
}

void Timer::Stop() {
  if (!is_open()) return;
  uv_timer_stop(raw_as<uv_timer_t>());
}

bool Timer::active() const { return is_open() && uv_is_active(raw()) != 0; }

void Timer::OnFire(uv_timer_t* t) noexcept {
  Timer* self = OpenOwner<Timer>(t);
  if (self == nullptr) return;
  std::shared_ptr<Callback> cb = self->cb_;  // keeps the function alive if self dies
  if (cb && *cb) (*cb)();
}

}  // namespace gossync::io
