// Length-prefixed framing of the repair stream (PROTOCOL.md, "Framing"): a
// 4-byte big-endian length, then that many bytes of msgpack.
//
// Thread: a FrameDecoder belongs to one connection; not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/core/repair_messages.h"
#include "gossync/status.h"

namespace gossync::wire {

inline constexpr size_t kFrameHeaderBytes = 4;

// The header and body of one frame. REQUIRES: body.size() <= UINT32_MAX.
std::vector<uint8_t> EncodeFrame(std::span<const uint8_t> body);

// Splits a byte stream into frame bodies, whatever the chunking of the input.
// A frame's length is checked against the maximum as soon as its 4 header
// bytes are in, before anything is allocated for the body; the body then
// grows only with bytes that actually arrived. An empty or oversized frame
// is an error that sticks: every later Feed returns it.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_bytes = core::kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  // Consumes all of `bytes`, appending each completed frame body to
  // `frames`. Errors: LimitExceeded (a length over the maximum; the message
  // starts with "frame_too_large"), Corruption (a zero length).
  Status Feed(std::span<const uint8_t> bytes, std::vector<std::vector<uint8_t>>* frames);

  // At the end of the stream: OK if no frame was cut short, else
  // Corruption "truncated: ...". Also returns a sticky error.
  Status Finish() const;

  const Status& error() const { return error_; }
  // Bytes of the incomplete frame held (header included).
  size_t buffered() const { return header_len_ + body_.size(); }
  size_t max_frame_bytes() const { return max_frame_bytes_; }

 private:
  size_t max_frame_bytes_;
  std::array<uint8_t, kFrameHeaderBytes> header_{};
  size_t header_len_ = 0;
  size_t body_len_ = 0;  // valid once header_len_ == 4
  std::vector<uint8_t> body_;
  Status error_;
};

}  // namespace gossync::wire
