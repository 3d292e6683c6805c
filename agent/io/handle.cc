#include "agent/io/handle.h"

#include "gossync/status.h"

namespace gossync::io {

Handle::Handle(uv_handle_t* handle, uv_close_cb free_fn)
    : loop_(handle->loop), handle_(handle), free_fn_(free_fn) {
  GOSSYNC_CHECK(handle != nullptr && free_fn != nullptr);
  handle_->data = this;
}

Handle::~Handle() {
  // A derived destructor normally closed already (so its OnClose ran); this covers
  // wrappers without extra resources.
  Close();
  // Detach: the close callback may run after this object is gone.
  if (handle_ != nullptr) handle_->data = nullptr;
}

void Handle::Close() {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  OnClose();
  if (handle_ == nullptr) return;  // OnClose took the handle over with Release()
  uv_close(handle_, free_fn_);
}

void Handle::NotifyClosed(uv_handle_t* handle) noexcept {
  auto* self = static_cast<Handle*>(handle->data);
  if (self == nullptr) return;
  self->state_ = State::kClosed;
  self->handle_ = nullptr;
  handle->data = nullptr;
}

uv_handle_t* Handle::Release() {
  uv_handle_t* h = handle_;
  if (h != nullptr) h->data = nullptr;
  handle_ = nullptr;
  state_ = State::kClosed;
  return h;
}

}  // namespace gossync::io
