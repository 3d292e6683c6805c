// libFuzzer: the gossip packet decoder (what tls::Open hands it). A decoded
// packet must re-encode to the size model and decode to itself.
#include <cstddef>
#include <cstdint>

#include "agent/wire/gossip_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gossync::wire::FuzzDecodeGossipPacket(data, size);
}
