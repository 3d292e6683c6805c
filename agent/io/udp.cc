#include "agent/io/udp.h"

#include "agent/io/log.h"
#include "agent/io/uv_status.h"

namespace gossync::io {
namespace {

// A datagram copied for an asynchronous send; freed in the send callback.
struct SendRequest {
  uv_udp_send_t req;
  std::vector<uint8_t> bytes;
};

}  // namespace

Result<std::unique_ptr<UdpSocket>> UdpSocket::Bind(uv_loop_t* loop, const SocketAddress& address,
                                                   const UdpOptions& options,
                                                   ReceiveCallback on_receive) {
  if (!address.is_valid()) return Status::InvalidArgument("udp bind: no address");
  if (options.max_datagram == 0 || options.max_datagram > 65535) {
    return Status::InvalidArgument("udp: max_datagram must be from 1 to 65535 bytes");
  }
  auto* h = new uv_udp_t;
  int rc = uv_udp_init(loop, h);
  if (rc < 0) {
    delete h;
    return UvError("udp init", rc);
  }
  std::unique_ptr<UdpSocket> sock(new UdpSocket(h, options, std::move(on_receive)));
  std::string what = "udp bind " + address.ToString();
  rc = uv_udp_bind(h, address.sockaddr_ptr(), 0);
  if (rc < 0) return UvError(what, rc);
  sockaddr_storage bound{};
  int len = sizeof(bound);
  rc = uv_udp_getsockname(h, reinterpret_cast<sockaddr*>(&bound), &len);
  if (rc < 0) return UvError(what, rc);
  Result<SocketAddress> local = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&bound));
  if (!local.ok()) return local.status();
  sock->local_ = *local;
  rc = uv_udp_recv_start(h, &UdpSocket::OnAlloc, &UdpSocket::OnReceive);
  if (rc < 0) return UvError(what, rc);
  Log().debug("udp bound {}", sock->local_.ToString());
  return sock;
}

UdpSocket::UdpSocket(uv_udp_t* h, const UdpOptions& options, ReceiveCallback on_receive)
    : Handle(reinterpret_cast<uv_handle_t*>(h), &FreeHandle<uv_udp_t>),
      options_(options),
      on_receive_(std::make_shared<ReceiveCallback>(std::move(on_receive))),
      receive_buffer_(options.max_datagram) {}

UdpSocket::~UdpSocket() { Close(); }

size_t UdpSocket::send_queue_count() const {
  return is_open() ? uv_udp_get_send_queue_count(raw_as<uv_udp_t>()) : 0;
}

Status UdpSocket::Send(const SocketAddress& to, std::span<const uint8_t> datagram) {
  if (!is_open()) return Status::Aborted("udp socket closed");
  if (to.family() != local_.family()) {
    return Status::InvalidArgument("udp send to " + to.ToString() + " from a socket bound to " +
                                   local_.ToString() + ": address families differ");
  }
  // Every send goes through uv_udp_send with a copy. libuv sends at once when its queue
  // is empty, but a datagram stays counted until the next loop iteration, so the count
  // bounds both a burst within one iteration and a backlog behind a full socket.
  if (uv_udp_get_send_queue_count(raw_as<uv_udp_t>()) >= options_.max_send_queue) {
    ++counters_.dropped_queue_full;
    return Status::LimitExceeded("udp send queue full (" + std::to_string(options_.max_send_queue) +
                                 " datagrams)");
  }
  auto req = std::make_unique<SendRequest>();
  req->bytes.assign(datagram.begin(), datagram.end());
  req->req.data = req.get();
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(req->bytes.data()),
                             static_cast<unsigned>(req->bytes.size()));
  int rc =
      uv_udp_send(&req->req, raw_as<uv_udp_t>(), &buf, 1, to.sockaddr_ptr(), &UdpSocket::OnSent);
  if (rc < 0) {
    ++counters_.send_errors;
    return UvError("udp send to " + to.ToString(), rc);
  }
  req.release();  // OnSent frees it
  return Status::Ok();
}

void UdpSocket::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
  UdpSocket* self = OpenOwner<UdpSocket>(h);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  *buf = uv_buf_init(reinterpret_cast<char*>(self->receive_buffer_.data()),
                     static_cast<unsigned>(self->receive_buffer_.size()));
}

void UdpSocket::OnReceive(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                          unsigned flags) noexcept {
  UdpSocket* self = OpenOwner<UdpSocket>(h);
  if (self == nullptr) return;
  if (nread < 0) {
    ++self->counters_.receive_errors;
    Log().debug("udp {} receive: {}", self->local_.ToString(),
                uv_strerror(static_cast<int>(nread)));
    return;
  }
  if (addr == nullptr) return;  // nothing more to read
  if (flags & UV_UDP_PARTIAL) {
    ++self->counters_.dropped_oversize;
    return;
  }
  Result<SocketAddress> from = SocketAddress::FromSockaddr(addr);
  if (!from.ok()) {
    ++self->counters_.receive_errors;
    return;
  }
  ++self->counters_.received;
  std::shared_ptr<ReceiveCallback> cb = self->on_receive_;
  if (*cb) {
    (*cb)(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf->base),
                                   static_cast<size_t>(nread)),
          *from);
  }
}

void UdpSocket::OnSent(uv_udp_send_t* req, int status) noexcept {
  std::unique_ptr<SendRequest> own(static_cast<SendRequest*>(req->data));
  UdpSocket* self = OpenOwner<UdpSocket>(req->handle);
  if (self == nullptr) return;  // closing: UV_ECANCELED, dropped silently
  if (status == 0) {
    ++self->counters_.sent;
  } else {
    ++self->counters_.send_errors;
    Log().debug("udp {} send: {}", self->local_.ToString(), uv_strerror(status));
  }
}

}  // namespace gossync::io
