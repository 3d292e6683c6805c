// UdpSocket: a bound UDP socket that receives into a callback and sends copies of
// datagrams through a bounded queue. Lifetime: handle.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "agent/io/address.h"
#include "agent/io/handle.h"
#include "gossync/status.h"

namespace gossync::io {

struct UdpOptions {
  // Largest datagram accepted, in bytes; a larger one arrives truncated (MSG_TRUNC) and
  // is dropped and counted in dropped_oversize. Gossip packets stay under 1,200 bytes.
  size_t max_datagram = 1500;
  // Most datagrams held by libuv at once (uv_udp_get_send_queue_count): sends handed
  // over in the current loop iteration plus those waiting for the socket. Past it Send
  // drops the datagram and counts it in dropped_queue_full.
  size_t max_send_queue = 256;
};

struct UdpCounters {
  uint64_t received = 0;            // datagrams delivered to the callback
  uint64_t dropped_oversize = 0;    // received datagrams larger than max_datagram
  uint64_t receive_errors = 0;      // recvmsg errors
  uint64_t sent = 0;                // datagrams the kernel accepted
  uint64_t dropped_queue_full = 0;  // Send calls refused because of max_send_queue
  uint64_t send_errors = 0;         // sends that failed (EMSGSIZE, unreachable, ...)
};

// Loop thread only (handle.h rule 7).
class UdpSocket final : public Handle {
 public:
  // One datagram: its bytes (valid only during the call) and its sender.
  using ReceiveCallback =
      std::function<void(std::span<const uint8_t> datagram, const SocketAddress& from)>;

  // Binds to `address` (port 0 picks a free port; see local_address) and starts
  // receiving into `on_receive`. Errors: kAlreadyExists if the port is taken,
  // kInvalidArgument for a bad option, kIoError otherwise. Loop thread.
  static Result<std::unique_ptr<UdpSocket>> Bind(uv_loop_t* loop, const SocketAddress& address,
                                                 const UdpOptions& options,
                                                 ReceiveCallback on_receive);
  ~UdpSocket() override;

  // Copies `datagram` and queues it for `to`. Returns kLimitExceeded (and counts) when
  // the send queue is full, kInvalidArgument when `to` is of the other address family
  // than the socket, kAborted when closed. Failures after the copy are only counted
  // (send_errors): UDP gives no delivery guarantee anyway.
  Status Send(const SocketAddress& to, std::span<const uint8_t> datagram);

  // The bound address, with the real port when bound to port 0.
  const SocketAddress& local_address() const { return local_; }
  const UdpCounters& counters() const { return counters_; }
  // Datagrams currently held by libuv (uv_udp_get_send_queue_count).
  size_t send_queue_count() const;

 private:
  UdpSocket(uv_udp_t* h, const UdpOptions& options, ReceiveCallback on_receive);
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) noexcept;
  static void OnReceive(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                        unsigned flags) noexcept;
  static void OnSent(uv_udp_send_t* req, int status) noexcept;

  UdpOptions options_;
  std::shared_ptr<ReceiveCallback> on_receive_;
  // One receive buffer, reused: libuv hands it back to OnReceive before asking again.
  std::vector<uint8_t> receive_buffer_;
  SocketAddress local_;
  UdpCounters counters_;
};

}  // namespace gossync::io
