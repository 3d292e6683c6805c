// TestPeer: a hostile repair peer for integration tests (issue 6). A blocking
// client that connects to a real agent's repair port over real TCP and real
// TLS (tls::TlsSession over a plain socket, with certificates from the test
// cluster's CA or any other) and can send anything: well-formed protocol
// messages, raw frames, raw plaintext inside TLS, raw bytes under TLS, a
// truncated stream, a slow trickle. It can also stop halfway through the
// handshake, or never start it.
//
// Every wait has a deadline. Writes use MSG_NOSIGNAL, so an agent that hangs
// up cannot kill the test with SIGPIPE. One thread; not thread-safe.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <map>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/core/entry.h"
#include "agent/core/repair_messages.h"
#include "agent/tls/ossl.h"
#include "agent/tls/session.h"
#include "agent/wire/frame.h"
#include "gossync/status.h"

namespace gossync::testutil {

// What the peer presents and trusts. Every field is a PEM file path.
struct PeerCredentials {
  std::string cert;  // empty: no client certificate
  std::string key;
  std::string ca;    // trust anchor for the agent's certificate (the cluster CA)
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;  // TLS1_2_VERSION: a TLS 1.2-only client
};

class TestPeer {
 public:
  using ms = std::chrono::milliseconds;

  // A TCP connection to "host:port", nothing sent. Throws if it cannot connect.
  static std::unique_ptr<TestPeer> Tcp(const std::string& address);
  // TCP, then the TLS handshake to its end (the agent's certificate must name
  // `server_name`). The error says why the handshake failed. In TLS 1.3 the
  // client finishes first: an agent that refuses our certificate does so
  // after this returns, with an alert that the next Receive sees.
  static Result<std::unique_ptr<TestPeer>> Tls(const std::string& address,
                                               const PeerCredentials& creds,
                                               const std::string& server_name,
                                               ms timeout = ms(5000));
  // TCP and a ClientHello, and nothing more: a half-open TLS connection.
  // What the agent answers is kept unread (WaitClosed does not advance the
  // handshake) until FinishHandshake.
  static std::unique_ptr<TestPeer> StartTls(const std::string& address,
                                            const PeerCredentials& creds,
                                            const std::string& server_name);
  ~TestPeer();
  TestPeer(const TestPeer&) = delete;
  TestPeer& operator=(const TestPeer&) = delete;

  // Continues a StartTls handshake to its end.
  Status FinishHandshake(ms timeout);

  // Raw bytes on the TCP socket (under TLS, or instead of it).
  Status SendWire(std::span<const uint8_t> bytes);
  // Bytes inside TLS. REQUIRES: the handshake is done.
  Status SendPlain(std::span<const uint8_t> bytes);
  // One frame: the 4-byte length and `body`.
  Status SendFrame(std::span<const uint8_t> body);
  // The same, for byte lists written in place: SendFrame({0xdd, 0xff}).
  Status SendWire(const std::vector<uint8_t>& b) { return SendWire(std::span<const uint8_t>(b)); }
  Status SendPlain(const std::vector<uint8_t>& b) { return SendPlain(std::span<const uint8_t>(b)); }
  Status SendFrame(const std::vector<uint8_t>& b) { return SendFrame(std::span<const uint8_t>(b)); }
  // One protocol message, however malformed its fields.
  Status Send(const core::RepairMessage& message);
  // `bytes` inside TLS (or, with `wire`, raw on TCP), `chunk` bytes every
  // `interval`, until all is sent, the agent closes, or `max_time` passes.
  // Returns how many bytes went out.
  size_t Trickle(std::span<const uint8_t> bytes, size_t chunk, ms interval, ms max_time,
                 bool wire = false);

  // The next message from the agent: Unavailable when `timeout` passes
  // first, Aborted "closed: <why>" once the connection has ended, the decode
  // error for a frame that does not decode.
  Result<core::RepairMessage> Receive(ms timeout);
  // Reads (keeping what arrives in received()) until the agent ends the
  // connection; false if it has not within `timeout`.
  bool WaitClosed(ms timeout);

  // close_notify, then shutdown(SHUT_WR): a clean end of our stream.
  void CloseNotify();
  // shutdown(SHUT_WR) without close_notify: the stream just stops.
  void ShutdownWrite();
  // Closes the socket at once.
  void Close();

  bool closed() const { return closed_; }
  const std::string& close_reason() const { return close_reason_; }
  bool handshake_done() const { return tls_ && tls_->handshake_done(); }
  // Every message received so far, in order.
  const std::vector<core::RepairMessage>& received() const { return received_; }
  // The reason of an ABORT the agent sent, if it sent one.
  std::optional<std::string> abort_reason() const;

 private:
  TestPeer() = default;
  Status Flush();
  // Reads once (waiting up to `timeout`) and decodes what arrived.
  void Pump(ms timeout);

  int fd_ = -1;
  tls::SslCtxPtr ctx_;
  std::unique_ptr<tls::TlsSession> tls_;
  wire::FrameDecoder decoder_{64 << 20};
  std::vector<std::vector<uint8_t>> frames_;  // received, not yet returned
  size_t next_frame_ = 0;
  std::vector<core::RepairMessage> received_;
  bool closed_ = false;
  std::string close_reason_;
  bool hold_tls_ = false;           // StartTls: do not advance the handshake yet
  std::vector<uint8_t> held_;       // ciphertext received meanwhile
};

// Plays the content server for a session in which we sent ENTRIES: answers
// the agent's BLOCKLIST_REQ and BLOCK_REQ from `files` (path -> content, in
// blocks of core::kDefaultBlockSize) until the agent has been quiet for
// `quiet`, then sends FIN and closes after FIN_ACK. `tamper(path, index,
// data)` may change a block (or the block list's view of it: it is applied
// to blocks only, the BLOCKLIST carries the true hashes unless
// `lie_in_blocklist`) before it is sent.
struct ServeOptions {
  std::function<void(const std::string& path, uint32_t index, std::vector<uint8_t>& data)> tamper;
  bool lie_in_blocklist = false;  // hash the tampered blocks in the BLOCKLIST too
  std::chrono::milliseconds quiet{1000};
  std::chrono::milliseconds timeout{20000};
};
struct ServeResult {
  bool finished = false;                // FIN_ACK came and we closed
  std::vector<std::string> requested;   // paths the agent asked content for
  std::optional<std::string> aborted;   // the agent's ABORT reason
  std::string error;                    // how it ended otherwise
};
ServeResult Serve(TestPeer& peer, const std::map<std::string, std::string>& files,
                  const ServeOptions& options = {});

// The SSL_CTX a TestPeer uses: TLS_client_method within the versions, the
// certificate and key if given, `ca` as the only trust anchor, SSL_VERIFY_PEER.
tls::SslCtxPtr MakePeerContext(const PeerCredentials& creds);

// Message helpers.
core::HelloMsg PeerHello(const std::string& name, uint8_t depth = 4);
// A live file entry of `content`, version (node_id: counter).
core::Entry FileEntry(const std::string& path, const std::string& content, uint64_t node_id = 77,
                      uint64_t counter = 1, const std::string& origin = "mallory");
core::Entry SymlinkEntry(const std::string& path, const std::string& target, uint64_t node_id = 77,
                         uint64_t counter = 1, const std::string& origin = "mallory");
core::Hash256 Sha256Of(const std::string& bytes);
std::vector<uint8_t> Bytes(const std::string& s);

}  // namespace gossync::testutil
