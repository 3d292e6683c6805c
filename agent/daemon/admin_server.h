// The admin socket server (include/gossync/admin_api.h): one JSON request
// line in, one JSON response line out, per connection.
//
// Loop thread only. Requests larger than admin::kMaxRequestBytes, malformed
// JSON and unknown commands are answered with {"ok": false, "error": ...}.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/io/pipe.h"
#include "gossync/status.h"

namespace gossync::daemon {

class AdminServer {
 public:
  // Answers a request; may reply later (a sync), but exactly once. The reply
  // is the response without "ok"; an error Status becomes {"ok": false}.
  using Reply = std::function<void(Result<nlohmann::json>)>;
  using Handler = std::function<void(const nlohmann::json& request, Reply reply)>;

  explicit AdminServer(uv_loop_t* loop);
  ~AdminServer();

  void Handle(const std::string& cmd, Handler handler);
  // Binds `path` with mode 0660 (a stale socket of a dead agent is replaced;
  // a live one is an error).
  Status Listen(const std::string& path);
  void Close();

  uint64_t requests() const { return requests_; }
  uint64_t bad_requests() const { return bad_requests_; }

 private:
  struct Conn;
  void OnAccept(std::unique_ptr<io::PipeStream> stream);
  void Dispatch(Conn* conn, const std::string& line);
  void Finish(Conn* conn, const nlohmann::json& response);

  uv_loop_t* loop_;
  std::unique_ptr<io::PipeListener> listener_;
  std::map<std::string, Handler> handlers_;
  std::map<Conn*, std::unique_ptr<Conn>> conns_;
  uint64_t requests_ = 0;
  uint64_t bad_requests_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gossync::daemon
