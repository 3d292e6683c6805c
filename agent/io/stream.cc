#include "agent/io/stream.h"

#include "agent/io/log.h"
#include "agent/io/uv_status.h"

namespace gossync::io {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxWrite = size_t{1} << 30;

// The bytes of one queued write, copied; freed in the write callback.
struct WriteRequest {
  uv_write_t req;
  std::vector<uint8_t> bytes;
};

struct ShutdownRequest {
  uv_shutdown_t req;
  std::function<void(const Status&)> done;
};

}  // namespace

Stream::Stream(uv_stream_t* stream, uv_close_cb free_fn, std::string description)
    : Handle(reinterpret_cast<uv_handle_t*>(stream), free_fn),
      description_(std::move(description)),
      callbacks_(std::make_shared<Callbacks>()) {}

Stream::~Stream() { Close(); }

void Stream::OnClose() {
  reading_ = false;
  if (connect_timer_) connect_timer_->Close();
}

void Stream::Start(Callbacks callbacks) {
  GOSSYNC_CHECK(is_open());
  GOSSYNC_CHECK(!started_);
  GOSSYNC_CHECK(!on_connect_);  // still connecting
  started_ = true;
  callbacks_ = std::make_shared<Callbacks>(std::move(callbacks));
  read_buffer_.resize(kReadChunk);
  ResumeReading();
}

void Stream::PauseReading() {
  if (!is_open() || !reading_) return;
  uv_read_stop(stream());
  reading_ = false;
}

void Stream::ResumeReading() {
  if (!is_open() || reading_ || eof_ || !started_) return;
  int rc = uv_read_start(stream(), &Stream::OnAlloc, &Stream::OnRead);
  if (rc < 0) {
    // Only fails for a stream libuv no longer considers readable; report it as a read
    // error, but not from inside the caller's frame: the caller may hold references.
    Log().debug("{}: read start: {}", description_, uv_strerror(rc));
    return;
  }
  reading_ = true;
}

Status Stream::Write(std::span<const uint8_t> bytes) {
  if (!is_open()) return Status::Aborted(description_ + ": write on a closed stream");
  if (shut_down_) return Status::Aborted(description_ + ": write after shutdown");
  if (bytes.size() > kMaxWrite) {
    return Status::InvalidArgument(description_ + ": write of more than 1 GiB at once");
  }
  if (bytes.empty()) return Status::Ok();
  // Try the kernel first: no copy when the socket has room. uv_try_write declines
  // (UV_EAGAIN) while anything is queued or a connect is pending, which keeps order.
  size_t done = 0;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())),
                             static_cast<unsigned>(bytes.size()));
  int n = uv_try_write(stream(), &buf, 1);
  if (n >= 0) {
    done = static_cast<size_t>(n);
  } else if (n != UV_EAGAIN) {
    Status error = UvError(description_ + ": write", n);
    Close();
    return error;
  }
  if (done == bytes.size()) return Status::Ok();

  auto req = std::make_unique<WriteRequest>();
  req->bytes.assign(bytes.begin() + static_cast<ptrdiff_t>(done), bytes.end());
  req->req.data = req.get();
  buf = uv_buf_init(reinterpret_cast<char*>(req->bytes.data()),
                    static_cast<unsigned>(req->bytes.size()));
  int rc = uv_write(&req->req, stream(), &buf, 1, &Stream::OnWritten);
  if (rc < 0) {
    Status error = UvError(description_ + ": write", rc);
    Close();
    return error;
  }
  req.release();  // OnWritten frees it
  return Status::Ok();
}

size_t Stream::write_queue_bytes() const {
  return is_open() ? uv_stream_get_write_queue_size(stream()) : 0;
}

Status Stream::Shutdown(std::function<void(const Status&)> done) {
  if (!is_open()) return Status::Aborted(description_ + ": shutdown of a closed stream");
  if (shut_down_) return Status::Aborted(description_ + ": already shut down");
  auto req = std::make_unique<ShutdownRequest>();
  req->done = std::move(done);
  req->req.data = req.get();
  int rc = uv_shutdown(&req->req, stream(), &Stream::OnShutdown);
  if (rc < 0) return UvError(description_ + ": shutdown", rc);
  shut_down_ = true;
  req.release();  // OnShutdown frees it
  return Status::Ok();
}

void Stream::BeginConnect(ConnectCallback done, uint64_t timeout_ms) {
  on_connect_ = std::make_shared<ConnectCallback>(std::move(done));
  if (timeout_ms == 0) return;
  connect_timer_ = Timer::Create(loop());
  // The timer belongs to this stream, so `this` outlives every firing.
  connect_timer_->Start(timeout_ms, [this, timeout_ms] {
    FailConnect(Status::Unavailable("connect to " + description_ + ": timed out after " +
                                    std::to_string(timeout_ms) + " ms"));
  });
}

void Stream::FailConnect(const Status& error) {
  std::shared_ptr<ConnectCallback> cb = std::move(on_connect_);
  // Closing cancels the pending connect; its callback then sees a closing stream.
  Close();
  if (cb && *cb) (*cb)(error);
}

void Stream::OnConnect(uv_connect_t* req, int status) noexcept {
  std::unique_ptr<uv_connect_t> own(req);
  Stream* self = OpenOwner<Stream>(req->handle);
  if (self == nullptr || !self->on_connect_) return;
  if (self->connect_timer_) self->connect_timer_->Close();
  if (status < 0) {
    self->FailConnect(UvError("connect to " + self->description_, status));
    return;
  }
  std::shared_ptr<ConnectCallback> cb = std::move(self->on_connect_);
  self->OnConnected();
  Log().debug("connected to {}", self->description_);
  if (*cb) (*cb)(Status::Ok());
}

void Stream::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
  Stream* self = OpenOwner<Stream>(h);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  *buf = uv_buf_init(reinterpret_cast<char*>(self->read_buffer_.data()),
                     static_cast<unsigned>(self->read_buffer_.size()));
}

void Stream::OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  Stream* self = OpenOwner<Stream>(s);
  if (self == nullptr) return;
  std::shared_ptr<Callbacks> cbs = self->callbacks_;
  if (nread > 0) {
    if (cbs->on_data) {
      cbs->on_data(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf->base),
                                            static_cast<size_t>(nread)));
    }
  } else if (nread == UV_EOF) {
    // libuv has stopped reading already.
    self->reading_ = false;
    self->eof_ = true;
    if (cbs->on_eof) cbs->on_eof();
  } else if (nread < 0) {
    self->Fail(UvError(self->description_ + ": read", static_cast<int>(nread)));
  }
}

void Stream::OnWritten(uv_write_t* req, int status) noexcept {
  std::unique_ptr<WriteRequest> own(static_cast<WriteRequest*>(req->data));
  Stream* self = OpenOwner<Stream>(req->handle);
  if (self == nullptr) return;  // closing: UV_ECANCELED, dropped silently
  if (status < 0) {
    self->Fail(UvError(self->description_ + ": write", status));
    return;
  }
  if (uv_stream_get_write_queue_size(self->stream()) == 0) {
    std::shared_ptr<Callbacks> cbs = self->callbacks_;
    if (cbs->on_drain) cbs->on_drain();
  }
}

void Stream::OnShutdown(uv_shutdown_t* req, int status) noexcept {
  std::unique_ptr<ShutdownRequest> own(static_cast<ShutdownRequest*>(req->data));
  Stream* self = OpenOwner<Stream>(req->handle);
  if (self == nullptr) return;
  if (own->done) {
    own->done(status < 0 ? UvError(self->description_ + ": shutdown", status) : Status::Ok());
  }
}

void Stream::Fail(const Status& error) {
  std::shared_ptr<Callbacks> cbs = callbacks_;
  Log().debug("{}", error.ToString());
  Close();
  if (cbs->on_error) cbs->on_error(error);
}

}  // namespace gossync::io
