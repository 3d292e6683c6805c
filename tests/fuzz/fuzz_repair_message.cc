// libFuzzer: one repair frame body (wire::DecodeMessage). A decoded message
// must re-encode and decode to itself.
#include <cstddef>
#include <cstdint>

#include "agent/wire/repair_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gossync::wire::FuzzDecodeMessage(data, size);
}
