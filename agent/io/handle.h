// Handle: the lifetime rules of every libuv wrapper in gossync::io.
//
// THE RULES (STYLE.md habit 5; after Node's handle_wrap.h and uvw):
//
//  1. One owner per handle. A wrapper (Timer, UdpSocket, Stream, ...) owns exactly one
//     heap-allocated uv handle, whose `data` points back at the wrapper. Wrappers are
//     neither copyable nor movable (libuv holds a pointer to them) and are handed out as
//     std::unique_ptr: whoever holds the unique_ptr is the owner.
//  2. States are explicit: kOpen -> kClosing -> kClosed, never backwards.
//       kOpen     the handle is initialised and usable.
//       kClosing  Close() called uv_close(); libuv has not yet run the close callback.
//       kClosed   the close callback ran; the uv handle's memory is gone.
//  3. Close() is idempotent: the first call moves kOpen -> kClosing, later calls do
//     nothing. It never fails.
//  4. The uv handle's memory is freed only in libuv's close callback, never earlier,
//     because libuv touches the handle until then.
//  5. No callback is delivered after Close(). Requests still in flight when the handle
//     closes (writes, sends, connects, shutdowns) complete with UV_ECANCELED inside
//     libuv; the wrapper frees their memory and drops them silently.
//  6. Destroying the wrapper closes the handle (rule 3) and detaches it: the close
//     callback later frees the uv memory without touching the dead wrapper. So a
//     wrapper may be destroyed at any time on the loop thread, including from inside
//     one of its own callbacks.
//  7. Everything runs on the loop thread: create, call, destroy and receive callbacks
//     only on the thread that runs the wrapper's uv_loop_t. (QueueWork and Strand in
//     work.h are the only ways to reach the work pool.)
//  8. A callback must not throw. Every libuv trampoline in this layer is noexcept, so
//     an exception escaping a callback terminates the process loudly instead of
//     unwinding through libuv's C frames.
//  9. The loop must outlive its wrappers and must be run after they are closed, so that
//     the close callbacks run (Loop's destructor does this; see loop.h).
//
// For implementers of a wrapper: derive from Handle, allocate the uv handle with `new`,
// run uv_*_init, and only when it succeeded pass it to Handle's constructor (a handle
// that failed to initialise is plain memory and is deleted directly). A derived class
// that owns more than the one handle (a timer beside a socket, a file descriptor)
// overrides OnClose() and its destructor calls Close() first, while it still exists.
#pragma once

#include <uv.h>

#include <memory>

namespace gossync::io {

class Handle {
 public:
  enum class State { kOpen, kClosing, kClosed };

  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  // Closes the handle if it is open and detaches it (rule 6). Loop thread.
  virtual ~Handle();

  // kOpen -> kClosing; idempotent (rule 3). No callback of this wrapper runs afterwards.
  // Loop thread.
  void Close();

  State state() const { return state_; }
  bool is_open() const { return state_ == State::kOpen; }
  uv_loop_t* loop() const { return loop_; }

 protected:
  // Takes ownership of `handle`, which uv_*_init initialised. `free_fn` runs as libuv's
  // close callback: it must call Handle::NotifyClosed(handle) and then free the memory
  // (FreeHandle<H> does both for a plain `new H`).
  Handle(uv_handle_t* handle, uv_close_cb free_fn);

  template <typename H>
  static void FreeHandle(uv_handle_t* handle) noexcept {
    NotifyClosed(handle);
    delete reinterpret_cast<H*>(handle);
  }
  // Tells the owning wrapper, if it still exists, that its handle is closed.
  static void NotifyClosed(uv_handle_t* handle) noexcept;

  // The wrapper of `handle` if it exists and is open, else nullptr. Trampolines start
  // with this, which is what makes rule 5 hold.
  template <typename T>
  static T* OpenOwner(const void* handle) {
    auto* self = static_cast<Handle*>(reinterpret_cast<const uv_handle_t*>(handle)->data);
    if (self == nullptr || !self->is_open()) return nullptr;
    return static_cast<T*>(self);
  }

  // Runs once, inside the first Close(), before uv_close: close the extra resources.
  virtual void OnClose() {}

  // The uv handle; nullptr once closed or released.
  uv_handle_t* raw() const { return handle_; }
  template <typename H>
  H* raw_as() const {
    return reinterpret_cast<H*>(handle_);
  }

  // Gives up the uv handle without closing it: afterwards `handle->data` is nullptr and
  // this wrapper is kClosed. The caller must arrange for uv_close(handle, free_fn) later
  // (Process does, from OnClose, to keep watching a killed child until it is reaped;
  // Close() then skips its own uv_close).
  uv_handle_t* Release();

  // Expires when this wrapper is destroyed. A trampoline that must touch the wrapper
  // again after running a user callback (which may destroy it) checks this first.
  std::weak_ptr<void> alive() const { return alive_; }

 private:
  uv_loop_t* loop_;
  uv_handle_t* handle_;
  uv_close_cb free_fn_;
  State state_ = State::kOpen;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
};

}  // namespace gossync::io
