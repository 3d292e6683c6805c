// TlsChannel: frames over mutual TLS 1.3 over a TCP stream (DESIGN.md
// section 4). It moves bytes only: TLS (tls::TlsSession over memory BIOs),
// the 4-byte length framing with its maximum, and write backpressure (reading
// from the peer pauses while our own output is queued past a bound). The
// repair protocol lives above it.
//
// Loop thread only. Owned by one RepairConn; callbacks stop after Close().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/io/tcp.h"
#include "agent/tls/session.h"
#include "agent/wire/frame.h"
#include "gossync/status.h"

namespace gossync::daemon {

class TlsChannel {
 public:
  struct Callbacks {
    // The handshake is done; `peer` is the verified certificate's node name.
    std::function<void(const std::string& peer)> on_ready;
    // One frame body from the peer.
    std::function<void(std::vector<uint8_t> body)> on_frame;
    // The channel ended: OK for a clean end of stream after close_notify or
    // EOF between frames, else why (handshake refused, truncated, reset...).
    // Called at most once; the channel is closed when it runs.
    std::function<void(const Status& why)> on_closed;
    // Optional: our queued output has all reached the kernel (see HoldReading).
    std::function<void()> on_drain;
  };

  // Server side of an accepted connection.
  static std::unique_ptr<TlsChannel> Accept(std::unique_ptr<io::TcpStream> stream, SSL_CTX* ctx,
                                            size_t max_frame_bytes, Callbacks callbacks);
  // Client side: dials `address`, and requires the server's certificate to
  // name `expected_peer`.
  static std::unique_ptr<TlsChannel> Connect(uv_loop_t* loop, const io::SocketAddress& address,
                                             SSL_CTX* ctx, const std::string& expected_peer,
                                             uint64_t connect_timeout_ms, size_t max_frame_bytes,
                                             Callbacks callbacks);
  ~TlsChannel();

  // Queues one frame. REQUIRES: on_ready ran. Fails once closed.
  Status Send(std::span<const uint8_t> body);
  // Sends close_notify after what is queued, then closes.
  void Finish();
  // Closes at once (queued output is dropped). No callback runs afterwards.
  void Close();
  // While held, nothing more is read from the peer (frames already decoded
  // are still delivered). The owner holds reading while it cannot keep up,
  // e.g. while its own answers wait to be sent, and releases it in on_drain.
  void HoldReading(bool hold);

  const std::string& peer_name() const { return peer_; }
  std::string remote_address() const;
  uint64_t bytes_in() const { return bytes_in_; }    // on the wire (TLS records)
  uint64_t bytes_out() const { return bytes_out_; }
  size_t queued_bytes() const;

  // Reading pauses while this much of our output waits for the socket.
  static constexpr size_t kMaxQueuedBytes = 8 << 20;

 private:
  TlsChannel(size_t max_frame_bytes, Callbacks callbacks);
  void Attach(std::unique_ptr<io::TcpStream> stream);
  void OnData(std::span<const uint8_t> bytes);
  void Flush();
  void End(const Status& why);

  std::unique_ptr<io::TcpStream> stream_;
  // While connecting: the stream TcpConnect returned, attached once connected.
  std::shared_ptr<std::unique_ptr<io::TcpStream>> pending_connect_;
  std::unique_ptr<tls::TlsSession> tls_;
  wire::FrameDecoder decoder_;
  std::shared_ptr<Callbacks> callbacks_;
  std::string peer_;
  bool ready_ = false;
  bool ended_ = false;
  bool finishing_ = false;
  bool hold_ = false;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gossync::daemon
