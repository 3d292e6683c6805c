#include "tests/testutil/test_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "agent/core/hash.h"
#include "agent/wire/repair_codec.h"

namespace gossync::testutil {
namespace {

using Clock = std::chrono::steady_clock;

int ConnectTcp(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("bad address " + address);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    throw std::runtime_error("bad address " + address);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    int e = errno;
    close(fd);
    throw std::runtime_error("connect " + address + ": " + strerror(e));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

Status WriteAll(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("send", errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

}  // namespace

tls::SslCtxPtr MakePeerContext(const PeerCredentials& creds) {
  tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx.get(), creds.min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), creds.max_version);
  if (!creds.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), creds.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx.get(), creds.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("peer certificate: " + tls::DrainOpensslErrors());
    }
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), creds.ca.c_str(), nullptr) != 1) {
    throw std::runtime_error("peer CA: " + tls::DrainOpensslErrors());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

std::unique_ptr<TestPeer> TestPeer::Tcp(const std::string& address) {
  std::unique_ptr<TestPeer> p(new TestPeer());
  p->fd_ = ConnectTcp(address);
  return p;
}

std::unique_ptr<TestPeer> TestPeer::StartTls(const std::string& address,
                                             const PeerCredentials& creds,
                                             const std::string& server_name) {
  std::unique_ptr<TestPeer> p(new TestPeer());
  p->ctx_ = MakePeerContext(creds);
  Result<tls::TlsSession> s = tls::TlsSession::Client(p->ctx_.get(), server_name);
  if (!s.ok()) throw std::runtime_error("TlsSession::Client: " + s.status().ToString());
  p->tls_ = std::make_unique<tls::TlsSession>(std::move(*s));
  p->fd_ = ConnectTcp(address);
  if (Status f = p->Flush(); !f.ok()) throw std::runtime_error("ClientHello: " + f.ToString());
  p->hold_tls_ = true;
  return p;
}

Result<std::unique_ptr<TestPeer>> TestPeer::Tls(const std::string& address,
                                                const PeerCredentials& creds,
                                                const std::string& server_name, ms timeout) {
  std::unique_ptr<TestPeer> p = StartTls(address, creds, server_name);
  GOSSYNC_RETURN_IF_ERROR(p->FinishHandshake(timeout));
  return p;
}

TestPeer::~TestPeer() { Close(); }

Status TestPeer::FinishHandshake(ms timeout) {
  auto deadline = Clock::now() + timeout;
  hold_tls_ = false;
  if (!held_.empty()) {
    Status s = tls_->FeedCiphertext(held_);
    held_.clear();
    GOSSYNC_RETURN_IF_ERROR(s);
    GOSSYNC_RETURN_IF_ERROR(Flush());
  }
  while (!tls_->handshake_done()) {
    if (!tls_->error().ok()) return tls_->error();
    if (closed_) return Status::Aborted("closed during the handshake: " + close_reason_);
    if (Clock::now() >= deadline) return Status::Unavailable("handshake timed out");
    Pump(ms(RemainingMs(deadline)));
  }
  return Status::Ok();
}

Status TestPeer::Flush() {
  if (!tls_ || fd_ < 0) return Status::Ok();
  std::string out = tls_->TakeCiphertext();
  return WriteAll(fd_, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()),
                                                out.size()));
}

Status TestPeer::SendWire(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return Status::Aborted("closed");
  return WriteAll(fd_, bytes);
}

Status TestPeer::SendPlain(std::span<const uint8_t> bytes) {
  if (!tls_) return Status::InvalidArgument("no TLS");
  while (!bytes.empty()) {
    size_t n = std::min(bytes.size(), size_t{16} << 10);
    GOSSYNC_RETURN_IF_ERROR(tls_->WritePlaintext(bytes.subspan(0, n)));
    GOSSYNC_RETURN_IF_ERROR(Flush());
    bytes = bytes.subspan(n);
  }
  return Status::Ok();
}

Status TestPeer::SendFrame(std::span<const uint8_t> body) {
  return SendPlain(wire::EncodeFrame(body));
}

Status TestPeer::Send(const core::RepairMessage& message) {
  return SendFrame(wire::EncodeMessage(message));
}

size_t TestPeer::Trickle(std::span<const uint8_t> bytes, size_t chunk, ms interval, ms max_time,
                         bool wire) {
  auto deadline = Clock::now() + max_time;
  size_t sent = 0;
  while (sent < bytes.size() && Clock::now() < deadline) {
    size_t n = std::min(chunk, bytes.size() - sent);
    Status s = wire ? SendWire(bytes.subspan(sent, n)) : SendPlain(bytes.subspan(sent, n));
    if (!s.ok()) break;
    sent += n;
    // The pause doubles as the wait for the agent's verdict.
    Pump(interval);
    if (closed_) break;
  }
  return sent;
}

void TestPeer::Pump(ms timeout) {
  if (closed_ || fd_ < 0) {
    std::this_thread::sleep_for(std::min(timeout, ms(10)));
    return;
  }
  pollfd pfd{fd_, POLLIN, 0};
  int rc = poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (rc <= 0) return;
  uint8_t buf[64 * 1024];
  ssize_t n = recv(fd_, buf, sizeof(buf), 0);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    closed_ = true;
    close_reason_ = std::string("recv: ") + strerror(errno);
    return;
  }
  if (n == 0) {
    closed_ = true;
    close_reason_ = "eof";
    return;
  }
  if (!tls_) return;  // a raw TCP peer ignores what it gets
  if (hold_tls_) {
    held_.insert(held_.end(), buf, buf + n);
    return;
  }
  Status s = tls_->FeedCiphertext(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
  (void)Flush();
  if (!s.ok()) {
    closed_ = true;
    close_reason_ = s.ToString();
    return;
  }
  for (;;) {
    Result<size_t> got = tls_->ReadPlaintext(buf);
    if (!got.ok()) {
      closed_ = true;
      close_reason_ = got.status().ToString();
      return;
    }
    if (*got == 0) break;
    Status f = decoder_.Feed(std::span<const uint8_t>(buf, *got), &frames_);
    if (!f.ok()) {
      closed_ = true;
      close_reason_ = "bad frame from the agent: " + f.ToString();
      return;
    }
  }
  if (tls_->peer_closed()) {
    closed_ = true;
    close_reason_ = "close_notify";
  }
}

Result<core::RepairMessage> TestPeer::Receive(ms timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (next_frame_ < frames_.size()) {
      std::vector<uint8_t> body = std::move(frames_[next_frame_++]);
      Result<core::RepairMessage> m = wire::DecodeMessage(body, 64 << 20);
      if (m.ok()) received_.push_back(*m);
      return m;
    }
    if (closed_) return Status::Aborted("closed: " + close_reason_);
    if (Clock::now() >= deadline) return Status::Unavailable("nothing received in time");
    Pump(ms(RemainingMs(deadline)));
  }
}

bool TestPeer::WaitClosed(ms timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    Result<core::RepairMessage> m = Receive(ms(RemainingMs(deadline)));
    if (closed_ && next_frame_ >= frames_.size()) return true;
    if (!m.ok() && m.status().code() == Code::kUnavailable) return false;
  }
}

std::optional<std::string> TestPeer::abort_reason() const {
  for (const core::RepairMessage& m : received_) {
    if (auto* a = std::get_if<core::AbortMsg>(&m)) return a->reason;
  }
  return std::nullopt;
}

void TestPeer::CloseNotify() {
  if (tls_ && tls_->handshake_done()) {
    (void)tls_->Shutdown();
    (void)Flush();
  }
  ShutdownWrite();
}

void TestPeer::ShutdownWrite() {
  if (fd_ >= 0) shutdown(fd_, SHUT_WR);
}

void TestPeer::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

ServeResult Serve(TestPeer& peer, const std::map<std::string, std::string>& files,
                  const ServeOptions& o) {
  ServeResult r;
  const auto deadline = Clock::now() + o.timeout;
  const uint32_t bs = core::kDefaultBlockSize;
  auto block = [&](const std::string& path, uint32_t i) {
    const std::string& content = files.at(path);
    std::vector<uint8_t> b;
    if (uint64_t{i} * bs < content.size()) {
      std::string part = content.substr(size_t{i} * bs, bs);
      b.assign(part.begin(), part.end());
    }
    if (o.tamper) o.tamper(path, i, b);
    return b;
  };
  bool fin_sent = false, sent_since_fin = false;
  while (Clock::now() < deadline) {
    Result<core::RepairMessage> m = peer.Receive(fin_sent ? o.quiet * 4 : o.quiet);
    if (!m.ok()) {
      if (m.status().code() == Code::kUnavailable) {
        if (!fin_sent || sent_since_fin) {
          (void)peer.Send(core::FinMsg{});
          fin_sent = true;
          sent_since_fin = false;
        }
        continue;
      }
      r.aborted = peer.abort_reason();
      r.error = m.status().ToString();
      return r;
    }
    if (auto* q = std::get_if<core::BlockListReqMsg>(&*m)) {
      r.requested.push_back(q->path);
      sent_since_fin = true;
      if (!files.count(q->path)) {
        (void)peer.Send(core::ReqErrorMsg{q->req, 1, "not here"});
        continue;
      }
      const uint64_t size = files.at(q->path).size();
      core::BlockListMsg l;
      l.req = q->req;
      l.size = size;
      l.block_size = bs;
      l.first = 0;
      l.last = true;
      for (uint32_t i = 0; uint64_t{i} * bs < size; ++i) {
        std::string part = files.at(q->path).substr(size_t{i} * bs, bs);
        std::vector<uint8_t> b(part.begin(), part.end());
        if (o.lie_in_blocklist && o.tamper) o.tamper(q->path, i, b);
        l.hashes.push_back(core::Sha256(std::span<const uint8_t>(b)));
      }
      (void)peer.Send(l);
    } else if (auto* b = std::get_if<core::BlockReqMsg>(&*m)) {
      r.requested.push_back(b->path);
      sent_since_fin = true;
      if (!files.count(b->path)) {
        (void)peer.Send(core::ReqErrorMsg{b->req, 1, "not here"});
        continue;
      }
      for (uint32_t i : b->indexes) (void)peer.Send(core::BlockMsg{b->req, i, block(b->path, i)});
    } else if (std::holds_alternative<core::FinAckMsg>(*m)) {
      if (fin_sent && !sent_since_fin) {
        peer.CloseNotify();
        peer.WaitClosed(std::chrono::milliseconds(3000));
        r.finished = true;
        return r;
      }
    } else if (auto* a = std::get_if<core::AbortMsg>(&*m)) {
      r.aborted = a->reason;
      peer.WaitClosed(std::chrono::milliseconds(3000));
      return r;
    }
  }
  r.error = "timed out";
  return r;
}

core::HelloMsg PeerHello(const std::string& name, uint8_t depth) {
  core::HelloMsg h;
  h.name = name;
  h.depth = depth;
  // Not zero (an empty peer would be sent the whole dataset) and not the
  // agent's root: the agent waits for what we send.
  h.root.fill(0x5a);
  h.entries = 1;
  h.hlc = 1;
  return h;
}

core::Hash256 Sha256Of(const std::string& bytes) { return core::Sha256(std::string_view(bytes)); }

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

core::Entry FileEntry(const std::string& path, const std::string& content, uint64_t node_id,
                      uint64_t counter, const std::string& origin) {
  core::Entry e;
  e.path = path;
  e.kind = core::EntryKind::kFile;
  e.mode = 0644;
  e.size = content.size();
  e.mtime_ns = 1'700'000'000'000'000'000;
  e.hash = Sha256Of(content);
  e.vv = core::VersionVector({{node_id, counter}});
  e.hlc = (uint64_t{1'700'000'000'000} << 16) + counter;
  e.origin = origin;
  return e;
}

core::Entry SymlinkEntry(const std::string& path, const std::string& target, uint64_t node_id,
                         uint64_t counter, const std::string& origin) {
  core::Entry e = FileEntry(path, target, node_id, counter, origin);
  e.kind = core::EntryKind::kSymlink;
  e.mode = 0777;
  e.target = target;
  return e;
}

}  // namespace gossync::testutil
