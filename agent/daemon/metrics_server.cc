#include "agent/daemon/metrics_server.h"

#include "agent/daemon/logging.h"

namespace gossync::daemon {
namespace {

HttpResponse Error(int code, std::string reason) {
  HttpResponse r;
  r.code = code;
  r.body = reason + "\n";
  r.reason = std::move(reason);
  return r;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < 'A' || c > 'Z') return false;
  }
  return true;
}

}  // namespace

HttpResponse AnswerHttp(std::string_view head, const std::function<std::string()>& render) {
  // Request line: METHOD SP TARGET SP HTTP/1.x CRLF; the headers do not matter.
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return Error(400, "Bad Request");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Error(400, "Bad Request");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || target.empty() || version.substr(0, 7) != "HTTP/1.") {
    return Error(400, "Bad Request");
  }
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") return Error(404, "Not Found");
  if (method != "GET" && method != "HEAD") return Error(405, "Method Not Allowed");
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = render();
  r.head_only = method == "HEAD";
  return r;
}

std::string SerializeHttp(const HttpResponse& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.code) + " " + r.reason + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (r.code == 405) out += "Allow: GET, HEAD\r\n";
  out += "Connection: close\r\n\r\n";
  if (!r.head_only) out += r.body;
  return out;
}

struct MetricsServer::Conn {
  std::unique_ptr<io::TcpStream> stream;
  std::unique_ptr<io::Timer> timer;
  std::string buffer;
  bool answered = false;
};

MetricsServer::MetricsServer(uv_loop_t* loop, std::function<std::string()> render)
    : loop_(loop), render_(std::move(render)) {}

MetricsServer::~MetricsServer() { Close(); }

Status MetricsServer::Listen(const std::string& address) {
  Result<io::SocketAddress> addr = io::SocketAddress::Parse(address);
  if (!addr.ok()) return addr.status().Prefixed("metrics_listen");
  Result<std::unique_ptr<io::TcpListener>> l = io::TcpListener::Listen(
      loop_, *addr, [this](std::unique_ptr<io::TcpStream> s) { OnAccept(std::move(s)); });
  if (!l.ok()) return l.status().Prefixed("metrics_listen " + address);
  listener_ = std::move(*l);
  Logger("agent")->info("metrics_listening listen={}", this->address());
  return Status::Ok();
}

std::string MetricsServer::address() const {
  return listener_ ? listener_->local_address().ToString() : "";
}

void MetricsServer::Close() {
  listener_.reset();
  conns_.clear();  // destroying a stream closes it; its callbacks never run again
}

void MetricsServer::OnAccept(std::unique_ptr<io::TcpStream> stream) {
  if (conns_.size() >= kMaxConnections) {
    ++rejected_;
    return;  // dropping the stream closes it
  }
  auto conn = std::make_unique<Conn>();
  Conn* c = conn.get();
  c->stream = std::move(stream);
  c->timer = io::Timer::Create(loop_);
  conns_[c] = std::move(conn);
  c->timer->Start(kRequestTimeoutMs, [this, c] {
    ++rejected_;
    Drop(c);
  });
  io::Stream::Callbacks cbs;
  cbs.on_data = [this, c](std::span<const uint8_t> bytes) { OnData(c, bytes); };
  cbs.on_eof = [this, c] {
    if (!c->answered) Drop(c);
  };
  cbs.on_error = [this, c](const Status&) { Drop(c); };
  c->stream->Start(std::move(cbs));
}

void MetricsServer::OnData(Conn* c, std::span<const uint8_t> bytes) {
  if (c->answered) return;
  // Only as much as fits the limit is kept; the head must end inside it.
  size_t room = kMaxRequestBytes + 1 - c->buffer.size();
  c->buffer.append(reinterpret_cast<const char*>(bytes.data()), std::min(room, bytes.size()));
  size_t end = c->buffer.find("\r\n\r\n");
  if (end != std::string::npos && end + 4 <= kMaxRequestBytes) {
    ++requests_;
    HttpResponse r = AnswerHttp(std::string_view(c->buffer).substr(0, end + 4), render_);
    if (r.code >= 400) ++rejected_;
    Respond(c, r);
  } else if (c->buffer.size() > kMaxRequestBytes) {
    ++rejected_;
    Respond(c, Error(431, "Request Header Fields Too Large"));
  }
}

void MetricsServer::Respond(Conn* c, const HttpResponse& r) {
  c->answered = true;
  c->stream->PauseReading();
  if (!c->stream->Write(SerializeHttp(r)).ok()) return Drop(c);
  // The timer still bounds the time a slow reader may take to drain the answer.
  Status s = c->stream->Shutdown([this, c](const Status&) { Drop(c); });
  if (!s.ok()) Drop(c);
}

void MetricsServer::Drop(Conn* c) { conns_.erase(c); }

}  // namespace gossync::daemon
