// Stream: a connected byte stream over uv_stream_t, shared by TcpStream (tcp.h) and
// PipeStream (pipe.h). Lifetime: handle.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/io/handle.h"
#include "agent/io/timer.h"
#include "gossync/status.h"

namespace gossync::io {

// Called once when a connect attempt ends: OK, or why it failed (on failure the stream
// is already closed and the owner only has to drop it).
using ConnectCallback = std::function<void(const Status&)>;

// Loop thread only (handle.h rule 7). Created by TcpConnect, TcpListener, PipeConnect
// and PipeListener; never directly.
//
// Reading: Start() installs the callbacks and starts reading. Data arrives in on_data
// in chunks of at most 64 KiB until the peer ends its side (on_eof) or the stream fails
// (on_error). Writing: Write() copies the bytes, so the caller's buffer can be reused
// at once; bytes leave in order. write_queue_bytes() is the backpressure signal:
// stop producing while it is high and resume in on_drain.
class Stream : public Handle {
 public:
  struct Callbacks {
    // Bytes from the peer, valid only during the call. Required.
    std::function<void(std::span<const uint8_t> bytes)> on_data = nullptr;
    // The peer ended its sending side. Reading has stopped; writing still works (a
    // half-close). The owner typically Shutdown()s or Close()s in reply.
    std::function<void()> on_eof = nullptr;
    // A read or write failed (reset by peer, broken pipe, ...). The stream is already
    // closed when this runs. Called at most once.
    std::function<void(const Status& error)> on_error = nullptr;
    // Optional: the write queue has just emptied (everything written reached the
    // kernel). Not called for writes that completed immediately.
    std::function<void()> on_drain = nullptr;
  };

  ~Stream() override;

  // Installs `callbacks` and starts reading. REQUIRES: is_open(), connected (after the
  // ConnectCallback said OK, or an accepted stream), Start not called before.
  void Start(Callbacks callbacks);
  // Stops delivering on_data until ResumeReading; the kernel buffers, then the peer's
  // sends block (TCP flow control). Both are idempotent and no-ops when closed.
  void PauseReading();
  void ResumeReading();
  bool reading() const { return reading_; }
  // True once the peer ended its side (on_eof ran).
  bool eof() const { return eof_; }

  // Copies `bytes` and sends them after everything written before. What the kernel
  // takes at once is written immediately; the rest waits in the write queue (also
  // while a connect is still pending: it leaves once connected).
  // kAborted if closed or after Shutdown; kInvalidArgument past 1 GiB in one call. If
  // the write fails at once the stream is closed and the error returned (on_error is
  // not called); a later failure goes to on_error.
  Status Write(std::span<const uint8_t> bytes);
  Status Write(std::string_view bytes) {
    return Write(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  // Bytes accepted by Write and not yet handed to the kernel.
  size_t write_queue_bytes() const;

  // Ends our sending side once the write queue has drained (a FIN for TCP), then calls
  // `done` (if set) with the outcome; reading continues. Then Close() when done. Without
  // Shutdown, Close() discards queued writes. kAborted if closed or already shut down.
  Status Shutdown(std::function<void(const Status&)> done = nullptr);

  // Text for messages: "tcp 127.0.0.1:34567" or "unix /run/gossync/admin.sock".
  const std::string& description() const { return description_; }

 protected:
  // Takes ownership of an initialised stream handle (handle.h).
  Stream(uv_stream_t* stream, uv_close_cb free_fn, std::string description);
  uv_stream_t* stream() const { return raw_as<uv_stream_t>(); }
  void SetDescription(std::string description) { description_ = std::move(description); }

  // For the connect helpers: remember `done`; it runs on OnConnect or on the timeout.
  // timeout_ms = 0: no timeout.
  void BeginConnect(ConnectCallback done, uint64_t timeout_ms);
  static void OnConnect(uv_connect_t* req, int status) noexcept;
  // Called on a successful connect before the ConnectCallback (TcpStream caches its
  // local address there).
  virtual void OnConnected() {}

  void OnClose() override;

 private:
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) noexcept;
  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void OnWritten(uv_write_t* req, int status) noexcept;
  static void OnShutdown(uv_shutdown_t* req, int status) noexcept;
  // Closes the stream and reports `error` to on_error.
  void Fail(const Status& error);
  void FailConnect(const Status& error);

  std::string description_;
  // Shared so that a callback that destroys the stream does not destroy itself.
  std::shared_ptr<Callbacks> callbacks_;
  std::shared_ptr<ConnectCallback> on_connect_;
  std::unique_ptr<Timer> connect_timer_;
  std::vector<uint8_t> read_buffer_;
  bool started_ = false;
  bool reading_ = false;
  bool eof_ = false;
  bool shut_down_ = false;
};

}  // namespace gossync::io
