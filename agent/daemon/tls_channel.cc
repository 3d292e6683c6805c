#include "agent/daemon/tls_channel.h"

#include <algorithm>

namespace gossync::daemon {

TlsChannel::TlsChannel(size_t max_frame_bytes, Callbacks callbacks)
    : decoder_(max_frame_bytes), callbacks_(std::make_shared<Callbacks>(std::move(callbacks))) {}

TlsChannel::~TlsChannel() {
  *alive_ = false;
  Close();
}

std::unique_ptr<TlsChannel> TlsChannel::Accept(std::unique_ptr<io::TcpStream> stream,
                                               SSL_CTX* ctx, size_t max_frame_bytes,
                                               Callbacks callbacks) {
  std::unique_ptr<TlsChannel> ch(new TlsChannel(max_frame_bytes, std::move(callbacks)));
  Result<tls::TlsSession> s = tls::TlsSession::Server(ctx);
  if (!s.ok()) {
    ch->End(s.status());
    return ch;
  }
  ch->tls_ = std::make_unique<tls::TlsSession>(std::move(*s));
  ch->Attach(std::move(stream));
  return ch;
}

std::unique_ptr<TlsChannel> TlsChannel::Connect(uv_loop_t* loop, const io::SocketAddress& address,
                                                SSL_CTX* ctx, const std::string& expected_peer,
                                                uint64_t connect_timeout_ms,
                                                size_t max_frame_bytes, Callbacks callbacks) {
  std::unique_ptr<TlsChannel> ch(new TlsChannel(max_frame_bytes, std::move(callbacks)));
  Result<tls::TlsSession> s = tls::TlsSession::Client(ctx, expected_peer);
  if (!s.ok()) {
    ch->End(s.status());
    return ch;
  }
  ch->tls_ = std::make_unique<tls::TlsSession>(std::move(*s));
  TlsChannel* self = ch.get();
  auto alive = ch->alive_;
  // The stream is returned at once and connects in the background.
  auto pending = std::make_shared<std::unique_ptr<io::TcpStream>>();
  Result<std::unique_ptr<io::TcpStream>> stream =
      io::TcpConnect(loop, address, connect_timeout_ms, [self, alive, pending](const Status& st) {
        if (!*alive) return;
        if (!st.ok()) {
          self->End(st);
          return;
        }
        // Ended while connecting (a session that yielded, say): the stream
        // goes with this callback, which closes the connection. Attached, it
        // would hold the peer in its TLS handshake until the idle timeout.
        if (self->ended_) return;
        self->Attach(std::move(*pending));
      });
  if (!stream.ok()) {
    ch->End(stream.status());
    return ch;
  }
  *pending = std::move(*stream);
  // Keep the connecting stream owned by the channel until Attach.
  ch->stream_ = nullptr;
  ch->pending_connect_ = pending;
  return ch;
}

void TlsChannel::Attach(std::unique_ptr<io::TcpStream> stream) {
  stream_ = std::move(stream);
  pending_connect_.reset();
  (void)stream_->SetNoDelay(true);  // best effort: latency, not correctness
  io::Stream::Callbacks cbs;
  cbs.on_data = [this](std::span<const uint8_t> bytes) { OnData(bytes); };
  cbs.on_eof = [this] {
    Status fin = decoder_.Finish();
    if (!fin.ok()) return End(fin);
    End(ready_ ? Status::Ok() : Status::Unavailable("connection closed during the TLS handshake"));
  };
  cbs.on_error = [this](const Status& e) { End(e); };
  cbs.on_drain = [this] {
    if (stream_ && !stream_->reading() && !ended_ && !hold_) stream_->ResumeReading();
    auto own = callbacks_;  // it may End() or destroy the channel
    if (own->on_drain) own->on_drain();
  };
  stream_->Start(std::move(cbs));
  Flush();  // a client's ClientHello
}

std::string TlsChannel::remote_address() const {
  return stream_ ? stream_->peer_address().ToString() : std::string("-");
}

size_t TlsChannel::queued_bytes() const { return stream_ ? stream_->write_queue_bytes() : 0; }

void TlsChannel::OnData(std::span<const uint8_t> bytes) {
  bytes_in_ += bytes.size();
  auto alive = alive_;
  auto cbs = callbacks_;  // a callback may End() the channel, or destroy it
  Status s = tls_->FeedCiphertext(bytes);
  // Handshake replies, alerts. A failed write ends the channel, and the
  // on_closed callback may destroy it (a finishing channel's owner drops it
  // there): `this` must not be touched after that.
  Flush();
  if (!*alive || ended_) return;
  if (!s.ok()) return End(s);
  if (!ready_ && tls_->handshake_done()) {
    ready_ = true;
    peer_ = tls_->peer_name();
    if (cbs->on_ready) cbs->on_ready(peer_);
    if (!*alive || ended_) return;
  }
  uint8_t buf[64 * 1024];
  for (;;) {
    Result<size_t> n = tls_->ReadPlaintext(buf);
    if (!n.ok()) return End(n.status());
    if (*n == 0) break;
    std::vector<std::vector<uint8_t>> frames;
    Status f = decoder_.Feed(std::span<const uint8_t>(buf, *n), &frames);
    for (auto& frame : frames) {
      if (cbs->on_frame) cbs->on_frame(std::move(frame));
      if (!*alive || ended_) return;
    }
    if (!f.ok()) return End(f);
  }
  if (tls_->peer_closed()) {
    Status fin = decoder_.Finish();
    return End(fin);
  }
}

Status TlsChannel::Send(std::span<const uint8_t> body) {
  if (ended_ || !ready_) return Status::Aborted("channel not open");
  auto alive = alive_;
  std::vector<uint8_t> frame = wire::EncodeFrame(body);
  std::span<const uint8_t> rest(frame);
  while (!rest.empty()) {
    size_t n = std::min(rest.size(), tls::TlsSession::kMaxPlaintextWrite);
    GOSSYNC_RETURN_IF_ERROR(tls_->WritePlaintext(rest.subspan(0, n)));
    rest = rest.subspan(n);
    Flush();
    if (!*alive || ended_) return Status::Aborted("channel closed");
  }
  if (stream_ && stream_->write_queue_bytes() > kMaxQueuedBytes) stream_->PauseReading();
  return Status::Ok();
}

void TlsChannel::Flush() {
  if (!tls_ || !stream_ || ended_) return;
  std::string out = tls_->TakeCiphertext();
  if (out.empty()) return;
  bytes_out_ += out.size();
  Status s = stream_->Write(out);
  if (!s.ok()) End(s);
}

void TlsChannel::Finish() {
  if (ended_ || finishing_) return;
  finishing_ = true;
  auto alive = alive_;
  if (tls_) (void)tls_->Shutdown();
  Flush();
  if (!*alive || ended_) return;
  if (!stream_) return End(Status::Ok());
  Status s = stream_->Shutdown([this, alive](const Status&) {
    if (*alive) End(Status::Ok());
  });
  if (!s.ok()) End(Status::Ok());
}

void TlsChannel::End(const Status& why) {
  if (ended_) return;
  ended_ = true;
  if (stream_) stream_->Close();
  pending_connect_.reset();
  auto cbs = std::move(callbacks_);
  callbacks_ = std::make_shared<Callbacks>();
  if (cbs->on_closed) cbs->on_closed(why);
}

void TlsChannel::HoldReading(bool hold) {
  hold_ = hold;
  if (!stream_ || ended_) return;
  if (hold) {
    stream_->PauseReading();
  } else if (stream_->write_queue_bytes() <= kMaxQueuedBytes) {
    stream_->ResumeReading();
  }
}

void TlsChannel::Close() {
  ended_ = true;
  callbacks_ = std::make_shared<Callbacks>();
  if (stream_) stream_->Close();
  pending_connect_.reset();
}

}  // namespace gossync::daemon
