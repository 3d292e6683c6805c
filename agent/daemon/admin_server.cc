#include "agent/daemon/admin_server.h"

#include "agent/daemon/logging.h"
#include "gossync/admin_api.h"

namespace gossync::daemon {

struct AdminServer::Conn {
  std::unique_ptr<io::PipeStream> stream;
  std::string buffer;
  bool dispatched = false;
};

AdminServer::AdminServer(uv_loop_t* loop) : loop_(loop) {}

AdminServer::~AdminServer() {
  *alive_ = false;
  Close();
}

void AdminServer::Handle(const std::string& cmd, Handler handler) {
  handlers_[cmd] = std::move(handler);
}

Status AdminServer::Listen(const std::string& path) {
  Result<std::unique_ptr<io::PipeListener>> l = io::PipeListener::Listen(
      loop_, path, [this](std::unique_ptr<io::PipeStream> s) { OnAccept(std::move(s)); });
  if (!l.ok()) return l.status().Prefixed("admin_socket " + path);
  listener_ = std::move(*l);
  return Status::Ok();
}

void AdminServer::Close() {
  listener_.reset();
  conns_.clear();
}

void AdminServer::OnAccept(std::unique_ptr<io::PipeStream> stream) {
  auto conn = std::make_unique<Conn>();
  Conn* c = conn.get();
  c->stream = std::move(stream);
  conns_[c] = std::move(conn);
  io::Stream::Callbacks cbs;
  cbs.on_data = [this, c](std::span<const uint8_t> bytes) {
    if (c->dispatched) return;
    c->buffer.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    size_t nl = c->buffer.find('\n');
    if (nl != std::string::npos) {
      c->dispatched = true;
      Dispatch(c, c->buffer.substr(0, nl));
    } else if (c->buffer.size() > admin::kMaxRequestBytes) {
      c->dispatched = true;
      ++bad_requests_;
      Finish(c, {{"ok", false}, {"error", "request too large"}});
    }
  };
  cbs.on_eof = [this, c] {
    if (!c->dispatched) conns_.erase(c);
  };
  cbs.on_error = [this, c](const Status&) { conns_.erase(c); };
  c->stream->Start(std::move(cbs));
}

void AdminServer::Dispatch(Conn* c, const std::string& line) {
  ++requests_;
  nlohmann::json req = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
    ++bad_requests_;
    Finish(c, {{"ok", false}, {"error", "malformed request: expected {\"cmd\": \"...\"}"}});
    return;
  }
  std::string cmd = req["cmd"];
  auto it = handlers_.find(cmd);
  if (it == handlers_.end()) {
    ++bad_requests_;
    Finish(c, {{"ok", false}, {"error", "unknown command \"" + cmd + "\""}});
    return;
  }
  Logger("admin")->debug("request cmd={}", cmd);
  // The handler may answer later; the connection may be gone by then.
  it->second(req, [this, c, alive = alive_](Result<nlohmann::json> r) {
    if (!*alive || !conns_.count(c)) return;
    if (!r.ok()) {
      Finish(c, {{"ok", false}, {"error", r.status().message()}});
      return;
    }
    nlohmann::json out = std::move(*r);
    out["ok"] = true;
    Finish(c, out);
  });
}

void AdminServer::Finish(Conn* c, const nlohmann::json& response) {
  std::string text = response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  if (!c->stream->Write(text).ok()) {
    conns_.erase(c);
    return;
  }
  Status s = c->stream->Shutdown([this, c, alive = alive_](const Status&) {
    if (*alive) conns_.erase(c);
  });
  if (!s.ok()) conns_.erase(c);
}

}  // namespace gossync::daemon
