#include "agent/io/tcp.h"

#include "agent/io/log.h"
#include "agent/io/uv_status.h"

namespace gossync::io {
namespace {

Result<SocketAddress> SockName(const uv_tcp_t* h, bool peer) {
  sockaddr_storage ss{};
  int len = sizeof(ss);
  int rc = peer ? uv_tcp_getpeername(h, reinterpret_cast<sockaddr*>(&ss), &len)
                : uv_tcp_getsockname(h, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc < 0) return UvError(peer ? "getpeername" : "getsockname", rc);
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

TcpStream::TcpStream(uv_tcp_t* h, const SocketAddress& peer)
    : Stream(reinterpret_cast<uv_stream_t*>(h), &FreeHandle<uv_tcp_t>, "tcp " + peer.ToString()),
      peer_(peer) {}

TcpStream::~TcpStream() { Close(); }

void TcpStream::OnConnected() { CacheLocalAddress(); }

void TcpStream::CacheLocalAddress() {
  Result<SocketAddress> local = SockName(raw_as<uv_tcp_t>(), false);
  if (local.ok()) local_ = *local;
}

Status TcpStream::SetNoDelay(bool enable) {
  GOSSYNC_CHECK(is_open());
  int rc = uv_tcp_nodelay(raw_as<uv_tcp_t>(), enable ? 1 : 0);
  return rc < 0 ? UvError(description() + ": TCP_NODELAY", rc) : Status::Ok();
}

Status TcpStream::SetKeepAlive(bool enable, unsigned idle_seconds) {
  GOSSYNC_CHECK(is_open());
  int rc = uv_tcp_keepalive(raw_as<uv_tcp_t>(), enable ? 1 : 0, idle_seconds);
  return rc < 0 ? UvError(description() + ": SO_KEEPALIVE", rc) : Status::Ok();
}

Result<std::unique_ptr<TcpStream>> TcpConnect(uv_loop_t* loop, const SocketAddress& address,
                                              uint64_t timeout_ms, ConnectCallback on_connect) {
  if (!address.is_valid()) return Status::InvalidArgument("tcp connect: no address");
  auto* h = new uv_tcp_t;
  int rc = uv_tcp_init(loop, h);
  if (rc < 0) {
    delete h;
    return UvError("tcp init", rc);
  }
  std::unique_ptr<TcpStream> stream(new TcpStream(h, address));
  auto req = std::make_unique<uv_connect_t>();
  rc = uv_tcp_connect(req.get(), h, address.sockaddr_ptr(), &Stream::OnConnect);
  if (rc < 0) return UvError("connect to " + stream->description(), rc);
  req.release();  // OnConnect frees it, also when the stream closes first (UV_ECANCELED)
  stream->BeginConnect(std::move(on_connect), timeout_ms);
  return stream;
}

TcpListener::TcpListener(uv_tcp_t* h, AcceptCallback on_accept)
    : Handle(reinterpret_cast<uv_handle_t*>(h), &FreeHandle<uv_tcp_t>),
      on_accept_(std::make_shared<AcceptCallback>(std::move(on_accept))) {}

TcpListener::~TcpListener() { Close(); }

Result<std::unique_ptr<TcpListener>> TcpListener::Listen(uv_loop_t* loop,
                                                         const SocketAddress& address,
                                                         AcceptCallback on_accept, int backlog) {
  if (!address.is_valid()) return Status::InvalidArgument("tcp listen: no address");
  auto* h = new uv_tcp_t;
  int rc = uv_tcp_init(loop, h);
  if (rc < 0) {
    delete h;
    return UvError("tcp init", rc);
  }
  std::unique_ptr<TcpListener> listener(new TcpListener(h, std::move(on_accept)));
  std::string what = "tcp listen " + address.ToString();
  rc = uv_tcp_bind(h, address.sockaddr_ptr(), 0);
  if (rc < 0) return UvError(what, rc);
  // libuv defers some bind errors (EADDRINUSE) to listen.
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(h), backlog, &TcpListener::OnConnection);
  if (rc < 0) return UvError(what, rc);
  Result<SocketAddress> local = SockName(h, false);
  if (!local.ok()) return local.status().Prefixed(what);
  listener->local_ = *local;
  Log().debug("tcp listening on {}", listener->local_.ToString());
  return listener;
}

void TcpListener::OnConnection(uv_stream_t* server, int status) noexcept {
  TcpListener* self = OpenOwner<TcpListener>(server);
  if (self == nullptr) return;
  if (status < 0) {
    ++self->accept_errors_;
    Log().debug("tcp {} accept: {}", self->local_.ToString(), uv_strerror(status));
    return;
  }
  auto* h = new uv_tcp_t;
  int rc = uv_tcp_init(self->loop(), h);
  if (rc < 0) {
    delete h;
    ++self->accept_errors_;
    return;
  }
  // The peer is not known before accept; the description is fixed after.
  std::unique_ptr<TcpStream> stream(new TcpStream(h, SocketAddress()));
  rc = uv_accept(server, reinterpret_cast<uv_stream_t*>(h));
  if (rc < 0) {
    ++self->accept_errors_;
    Log().debug("tcp {} accept: {}", self->local_.ToString(), uv_strerror(rc));
    return;  // `stream` closes on the way out
  }
  Result<SocketAddress> peer = SockName(h, true);
  if (!peer.ok()) {
    // The peer left between accept and getpeername: nothing to talk to.
    ++self->accept_errors_;
    return;
  }
  stream->peer_ = *peer;
  stream->SetDescription("tcp " + peer->ToString());
  stream->CacheLocalAddress();
  std::shared_ptr<AcceptCallback> cb = self->on_accept_;
  if (*cb) (*cb)(std::move(stream));
}

}  // namespace gossync::io
