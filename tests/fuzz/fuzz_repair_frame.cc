// libFuzzer: the repair stream, framing and bodies. The first byte picks how
// the rest is chunked; the frames (and the error) must not depend on the
// chunking, and every frame body goes through wire::FuzzDecodeMessage.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/wire/frame.h"
#include "agent/wire/repair_codec.h"
#include "gossync/status.h"

namespace {

// A small maximum, so that claims above it are exercised too.
constexpr size_t kMaxFrame = 64 * 1024;

struct Outcome {
  std::vector<std::vector<uint8_t>> frames;
  bool failed = false;
  bool clean_end = false;
};

Outcome Run(std::span<const uint8_t> in, size_t chunk) {
  gossync::wire::FrameDecoder dec(kMaxFrame);
  Outcome o;
  for (size_t off = 0; off < in.size(); off += chunk) {
    gossync::Status s = dec.Feed(in.subspan(off, std::min(chunk, in.size() - off)), &o.frames);
    GOSSYNC_CHECK(dec.buffered() <= kMaxFrame + gossync::wire::kFrameHeaderBytes);
    if (!s.ok()) {
      o.failed = true;
      // Errors stick.
      std::vector<std::vector<uint8_t>> more;
      const uint8_t b = 0;
      GOSSYNC_CHECK(!dec.Feed(std::span<const uint8_t>(&b, 1), &more).ok() && more.empty());
      break;
    }
  }
  o.clean_end = dec.Finish().ok();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  const size_t chunk = 1 + data[0] % 97;
  Outcome a = Run(in, chunk);
  Outcome b = Run(in, in.size() + 1);
  GOSSYNC_CHECK(a.frames == b.frames && a.failed == b.failed && a.clean_end == b.clean_end);
  for (const std::vector<uint8_t>& f : a.frames) {
    GOSSYNC_CHECK(!f.empty() && f.size() <= kMaxFrame);
    gossync::wire::FuzzDecodeMessage(f.data(), f.size());
  }
  return 0;
}
