// libFuzzer: the entry codec (wire::DecodeEntry, core::ValidateEntry). A
// decoded entry must re-encode canonically and decode to itself.
#include <cstddef>
#include <cstdint>

#include "agent/wire/entry_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gossync::wire::FuzzDecodeEntry(data, size);
}
