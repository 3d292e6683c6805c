// TCP: TcpListener (accepts) and TcpConnect (dials), both giving a TcpStream, which is a
// Stream (stream.h) with addresses. Lifetime: handle.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "agent/io/address.h"
#include "agent/io/handle.h"
#include "agent/io/stream.h"
#include "gossync/status.h"

namespace gossync::io {

// A connected (or connecting) TCP stream. Loop thread only.
class TcpStream final : public Stream {
 public:
  ~TcpStream() override;

  // The remote end: the dialled address, or the accepting side's peer. Cached when the
  // connection was made, so it stays available after the peer has gone.
  const SocketAddress& peer_address() const { return peer_; }
  // Our end; unset (is_valid() false) until connected.
  const SocketAddress& local_address() const { return local_; }

  // TCP_NODELAY: send small frames at once instead of coalescing. REQUIRES: is_open().
  Status SetNoDelay(bool enable);
  // SO_KEEPALIVE with the first probe after `idle_seconds`. REQUIRES: is_open().
  Status SetKeepAlive(bool enable, unsigned idle_seconds);

 private:
  friend class TcpListener;
  friend Result<std::unique_ptr<TcpStream>> TcpConnect(uv_loop_t*, const SocketAddress&, uint64_t,
                                                       ConnectCallback);
  TcpStream(uv_tcp_t* h, const SocketAddress& peer);
  void OnConnected() override;
  void CacheLocalAddress();

  SocketAddress peer_;
  SocketAddress local_;
};

// Starts connecting to `address` and returns the stream at once, in the connecting
// state: the owner keeps it and, when `on_connect` says OK, calls Start(). If the
// attempt fails (refused: kUnavailable; unreachable; no answer within `timeout_ms`:
// kUnavailable "timed out") `on_connect` gets the error and the stream is already
// closed. Destroying the stream first cancels the attempt and `on_connect` never runs.
// timeout_ms = 0 leaves the kernel's own timeout (minutes). Loop thread.
Result<std::unique_ptr<TcpStream>> TcpConnect(uv_loop_t* loop, const SocketAddress& address,
                                              uint64_t timeout_ms, ConnectCallback on_connect);

// A listening TCP socket. Loop thread only.
class TcpListener final : public Handle {
 public:
  // Receives each accepted connection, already connected; the callee owns it and calls
  // Start() on it (or drops it to close it).
  using AcceptCallback = std::function<void(std::unique_ptr<TcpStream> stream)>;

  // Binds `address` (port 0 picks a free port; SO_REUSEADDR is set, as libuv does) and
  // listens. kAlreadyExists if the address is in use. Loop thread.
  static Result<std::unique_ptr<TcpListener>> Listen(uv_loop_t* loop, const SocketAddress& address,
                                                     AcceptCallback on_accept, int backlog = 128);
  ~TcpListener() override;

  // The bound address with the real port.
  const SocketAddress& local_address() const { return local_; }
  // accept() failures so far (EMFILE and the like); each is skipped.
  uint64_t accept_errors() const { return accept_errors_; }

 private:
  TcpListener(uv_tcp_t* h, AcceptCallback on_accept);
  static void OnConnection(uv_stream_t* server, int status) noexcept;

  std::shared_ptr<AcceptCallback> on_accept_;
  SocketAddress local_;
  uint64_t accept_errors_ = 0;
};

}  // namespace gossync::io
