#include "agent/io/pipe.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/io/log.h"
#include "agent/io/uv_status.h"

namespace gossync::io {
namespace {

Status CheckPath(const std::string& path) {
  // libuv 1.44 truncates a long path silently; refuse instead.
  if (path.empty()) return Status::InvalidArgument("unix socket: empty path");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::InvalidArgument("unix socket path \"" + path + "\" is longer than " +
                                   std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  }
  if (path.find('\0') != std::string::npos) {
    return Status::InvalidArgument("unix socket path contains a NUL byte");
  }
  return Status::Ok();
}

// Makes `path` free for bind: absent, or a socket nobody serves (removed here).
Status ClearStaleSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno("stat " + path, errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::AlreadyExists(path + " exists and is not a socket; not replacing it");
  }
  // Probe: a live server accepts (or has a full backlog: EAGAIN); a leftover refuses.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket", errno);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  path.copy(sun.sun_path, path.size());
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  int err = rc == 0 ? 0 : errno;
  close(fd);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
    return Status::AlreadyExists("another process is serving " + path);
  }
  if (err == ENOENT) return Status::Ok();  // removed meanwhile
  if (err != ECONNREFUSED) return Status::FromErrno("probe " + path, err);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("remove stale socket " + path, errno);
  }
  Log().debug("removed stale unix socket {}", path);
  return Status::Ok();
}

}  // namespace

PipeStream::PipeStream(uv_pipe_t* h, const std::string& path)
    : Stream(reinterpret_cast<uv_stream_t*>(h), &FreeHandle<uv_pipe_t>, "unix " + path) {}

PipeStream::~PipeStream() { Close(); }

Result<PeerCredentials> PipeStream::peer_credentials() const {
  GOSSYNC_CHECK(is_open());
  uv_os_fd_t fd = -1;
  int rc = uv_fileno(raw(), &fd);
  if (rc < 0) return UvError(description() + ": fileno", rc);
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::FromErrno(description() + ": SO_PEERCRED", errno);
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

Result<std::unique_ptr<PipeStream>> PipeConnect(uv_loop_t* loop, const std::string& path,
                                                ConnectCallback on_connect) {
  GOSSYNC_RETURN_IF_ERROR(CheckPath(path));
  auto* h = new uv_pipe_t;
  int rc = uv_pipe_init(loop, h, 0);
  if (rc < 0) {
    delete h;
    return UvError("pipe init", rc);
  }
  std::unique_ptr<PipeStream> stream(new PipeStream(h, path));
  // uv_pipe_connect reports every error through the callback, on a later iteration.
  auto* req = new uv_connect_t;
  uv_pipe_connect(req, h, path.c_str(), &Stream::OnConnect);
  stream->BeginConnect(std::move(on_connect), 0);
  return stream;
}

PipeListener::PipeListener(uv_pipe_t* h, std::string path, AcceptCallback on_accept)
    : Handle(reinterpret_cast<uv_handle_t*>(h), &FreeHandle<uv_pipe_t>),
      path_(std::move(path)),
      on_accept_(std::make_shared<AcceptCallback>(std::move(on_accept))) {}

PipeListener::~PipeListener() { Close(); }

Result<std::unique_ptr<PipeListener>> PipeListener::Listen(uv_loop_t* loop, const std::string& path,
                                                           AcceptCallback on_accept, mode_t mode,
                                                           int backlog) {
  GOSSYNC_RETURN_IF_ERROR(CheckPath(path));
  GOSSYNC_RETURN_IF_ERROR(ClearStaleSocket(path));
  auto* h = new uv_pipe_t;
  int rc = uv_pipe_init(loop, h, 0);
  if (rc < 0) {
    delete h;
    return UvError("pipe init", rc);
  }
  std::unique_ptr<PipeListener> listener(new PipeListener(h, path, std::move(on_accept)));
  rc = uv_pipe_bind(h, path.c_str());
  if (rc < 0) return UvError("bind unix socket " + path, rc);
  // Before listen: until then every connect is refused, whatever the file's mode.
  if (chmod(path.c_str(), mode) != 0) return Status::FromErrno("chmod " + path, errno);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(h), backlog, &PipeListener::OnConnection);
  if (rc < 0) return UvError("listen on unix socket " + path, rc);
  Log().debug("unix socket listening on {}", path);
  return listener;
}

void PipeListener::OnConnection(uv_stream_t* server, int status) noexcept {
  PipeListener* self = OpenOwner<PipeListener>(server);
  if (self == nullptr) return;
  if (status < 0) {
    ++self->accept_errors_;
    Log().debug("unix {} accept: {}", self->path_, uv_strerror(status));
    return;
  }
  auto* h = new uv_pipe_t;
  int rc = uv_pipe_init(self->loop(), h, 0);
  if (rc < 0) {
    delete h;
    ++self->accept_errors_;
    return;
  }
  std::unique_ptr<PipeStream> stream(new PipeStream(h, self->path_));
  rc = uv_accept(server, reinterpret_cast<uv_stream_t*>(h));
  if (rc < 0) {
    ++self->accept_errors_;
    Log().debug("unix {} accept: {}", self->path_, uv_strerror(rc));
    return;
  }
  std::shared_ptr<AcceptCallback> cb = self->on_accept_;
  if (*cb) (*cb)(std::move(stream));
}

}  // namespace gossync::io
