// Unix domain sockets: PipeListener (the admin socket server) and PipeConnect (the CLI
// side), both giving a PipeStream, which is a Stream (stream.h). Lifetime: handle.h.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "agent/io/handle.h"
#include "agent/io/stream.h"
#include "gossync/status.h"

namespace gossync::io {

// The connecting process behind a Unix socket (SO_PEERCRED).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// A connected (or connecting) Unix domain stream socket. Loop thread only.
class PipeStream final : public Stream {
 public:
  ~PipeStream() override;
  // Who is on the other end, as the kernel recorded it at connect time.
  // REQUIRES: is_open() and connected.
  Result<PeerCredentials> peer_credentials() const;

 private:
  friend class PipeListener;
  friend Result<std::unique_ptr<PipeStream>> PipeConnect(uv_loop_t*, const std::string&,
                                                         ConnectCallback);
  PipeStream(uv_pipe_t* h, const std::string& path);
};

// Starts connecting to the socket at `path` and returns the stream at once; see
// TcpConnect for the contract. kNotFound (no such file) and kUnavailable (nobody
// listening) arrive through `on_connect`. kInvalidArgument for a path too long for
// sun_path (107 bytes). Loop thread.
Result<std::unique_ptr<PipeStream>> PipeConnect(uv_loop_t* loop, const std::string& path,
                                                ConnectCallback on_connect);

// A listening Unix domain socket. Loop thread only.
class PipeListener final : public Handle {
 public:
  using AcceptCallback = std::function<void(std::unique_ptr<PipeStream> stream)>;

  // Serves `path` with permissions `mode` (default 0660: owner and group only).
  //  - If `path` is a socket nobody serves (a crashed daemon's leftover), it is replaced.
  //  - If another live process serves it (a connect succeeds), kAlreadyExists: two
  //    daemons must not share one admin socket.
  //  - If `path` exists and is not a socket, kAlreadyExists: it is never deleted.
  // The mode is applied between bind and listen, so no client can connect while the
  // socket has the umask's permissions. The parent directory must exist.
  // Blocks briefly (a non-blocking probe connect and a few syscalls); meant for start-up.
  // Loop thread.
  static Result<std::unique_ptr<PipeListener>> Listen(uv_loop_t* loop, const std::string& path,
                                                      AcceptCallback on_accept, mode_t mode = 0660,
                                                      int backlog = 64);
  // Closes; libuv removes the socket file as it closes the listener.
  ~PipeListener() override;

  const std::string& path() const { return path_; }
  uint64_t accept_errors() const { return accept_errors_; }

 private:
  PipeListener(uv_pipe_t* h, std::string path, AcceptCallback on_accept);
  static void OnConnection(uv_stream_t* server, int status) noexcept;

  std::string path_;
  std::shared_ptr<AcceptCallback> on_accept_;
  uint64_t accept_errors_ = 0;
};

}  // namespace gossync::io
