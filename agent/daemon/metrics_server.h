// MetricsServer: a minimal HTTP/1.1 server for Prometheus scrapes
// (metrics_listen in docs/config.md).
//
// It answers `GET /metrics` (and HEAD) with the text exposition format
// 0.0.4, 404 for any other path, 405 for other methods on /metrics, 400 for
// a request it cannot parse and 431 for one larger than kMaxRequestBytes.
// One request per connection ("Connection: close"). A connection that has
// not sent a whole request head within kRequestTimeoutMs is closed, and at
// most kMaxConnections are open at once (more are closed at accept). The
// request body, if any, is ignored.
//
// Plain HTTP without authentication: keep it on loopback or a management
// network.
//
// Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/io/tcp.h"
#include "agent/io/timer.h"
#include "gossync/status.h"

namespace gossync::daemon {

// The HTTP status line and body for one request head (pure, for tests).
struct HttpResponse {
  int code = 200;
  std::string reason = "OK";
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool head_only = false;  // HEAD: headers with the body's length, no body
};
// `head` is everything up to and including the blank line. `render` makes the
// metrics text, called only for GET/HEAD /metrics.
HttpResponse AnswerHttp(std::string_view head, const std::function<std::string()>& render);
// The bytes on the wire for `r`.
std::string SerializeHttp(const HttpResponse& r);

class MetricsServer {
 public:
  static constexpr size_t kMaxRequestBytes = 8192;
  static constexpr uint64_t kRequestTimeoutMs = 5000;
  static constexpr size_t kMaxConnections = 16;

  // `render` returns the metrics text; called on the loop per scrape.
  MetricsServer(uv_loop_t* loop, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds "IP:port" (port 0 picks one) and listens.
  Status Listen(const std::string& address);
  // Stops listening and closes every connection. Idempotent.
  void Close();
  // The bound address ("127.0.0.1:9107"); empty before Listen.
  std::string address() const;

  uint64_t requests() const { return requests_; }
  uint64_t rejected() const { return rejected_; }  // 4xx answers, timeouts, refused accepts

 private:
  struct Conn;
  void OnAccept(std::unique_ptr<io::TcpStream> stream);
  void OnData(Conn* c, std::span<const uint8_t> bytes);
  void Respond(Conn* c, const HttpResponse& r);
  void Drop(Conn* c);

  uv_loop_t* loop_;
  std::function<std::string()> render_;
  std::unique_ptr<io::TcpListener> listener_;
  std::map<Conn*, std::unique_ptr<Conn>> conns_;
  uint64_t requests_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace gossync::daemon
