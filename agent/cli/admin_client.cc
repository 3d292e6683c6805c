#include "agent/cli/admin_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "gossync/admin_api.h"

namespace gossync::cli {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd until the deadline.
Status WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::Aborted("timed out waiting for the agent");
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return Status::Ok();
    if (n < 0 && errno != EINTR) return Status::FromErrno("poll", errno);
  }
}

}  // namespace

Result<nlohmann::json> Call(const std::string& socket_path, const nlohmann::json& request,
                            int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Status::FromErrno("socket", errno);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return Status::Unavailable("no agent is listening on " + socket_path + " (" +
                                 std::strerror(err) + "); is gossyncd running?");
    }
    return Status::FromErrno("connect " + socket_path, err);
  }
  std::string out = request.dump() + "\n";
  size_t sent = 0;
  while (sent < out.size()) {
    GOSSYNC_RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline));
    ssize_t n = send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::FromErrno("send", errno);
    }
    sent += static_cast<size_t>(n);
  }
  std::string in;
  char buf[64 * 1024];
  for (;;) {
    if (in.size() > admin::kMaxResponseBytes) return Status::LimitExceeded("response too large");
    size_t nl = in.find('\n');
    if (nl != std::string::npos) {
      in.resize(nl);
      break;
    }
    GOSSYNC_RETURN_IF_ERROR(WaitFor(fd.get(), POLLIN, deadline));
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::FromErrno("recv", errno);
    }
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  nlohmann::json response = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!response.is_object()) return Status::Corruption("malformed answer from the agent");
  if (!response.value("ok", false)) {
    return Status::Internal(response.value("error", std::string("the agent refused")));
  }
  response.erase("ok");
  return response;
}

}  // namespace gossync::cli
