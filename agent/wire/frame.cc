#include "agent/wire/frame.h"

#include <algorithm>
#include <string>

namespace gossync::wire {

std::vector<uint8_t> EncodeFrame(std::span<const uint8_t> body) {
  GOSSYNC_CHECK(body.size() <= UINT32_MAX);
  const uint32_t n = static_cast<uint32_t>(body.size());
  std::vector<uint8_t> out;
  out.reserve(kFrameHeaderBytes + body.size());
  out.push_back(static_cast<uint8_t>(n >> 24));
  out.push_back(static_cast<uint8_t>(n >> 16));
  out.push_back(static_cast<uint8_t>(n >> 8));
  out.push_back(static_cast<uint8_t>(n));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Status FrameDecoder::Feed(std::span<const uint8_t> bytes,
                          std::vector<std::vector<uint8_t>>* frames) {
  if (!error_.ok()) return error_;
  while (!bytes.empty()) {
    if (header_len_ < kFrameHeaderBytes) {
      const size_t take = std::min(kFrameHeaderBytes - header_len_, bytes.size());
      std::copy_n(bytes.begin(), take, header_.begin() + header_len_);
      header_len_ += take;
      bytes = bytes.subspan(take);
      if (header_len_ < kFrameHeaderBytes) break;
      body_len_ = size_t{header_[0]} << 24 | size_t{header_[1]} << 16 | size_t{header_[2]} << 8 |
                  header_[3];
      if (body_len_ == 0) {
        error_ = Status::Corruption("empty frame (a message has at least its type)");
        return error_;
      }
      if (body_len_ > max_frame_bytes_) {
        error_ = Status::LimitExceeded("frame_too_large: a frame of " + std::to_string(body_len_) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(max_frame_bytes_));
        return error_;
      }
      body_.clear();
    }
    // Grows with the bytes that came, not with the announced length: a peer
    // announcing 4 MiB and sending 4 bytes costs 4 bytes.
    const size_t take = std::min(body_len_ - body_.size(), bytes.size());
    body_.insert(body_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (body_.size() == body_len_) {
      frames->push_back(std::move(body_));
      body_ = {};
      header_len_ = 0;
      body_len_ = 0;
    }
  }
  return Status::Ok();
}

Status FrameDecoder::Finish() const {
  if (!error_.ok()) return error_;
  if (header_len_ == 0) return Status::Ok();
  if (header_len_ < kFrameHeaderBytes) {
    return Status::Corruption("truncated: the stream ended inside a frame header (" +
                              std::to_string(header_len_) + " of 4 bytes)");
  }
  return Status::Corruption("truncated: the stream ended inside a frame (" +
                            std::to_string(body_.size()) + " of " + std::to_string(body_len_) +
                            " bytes)");
}

}  // namespace gossync::wire
