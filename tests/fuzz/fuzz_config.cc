// libFuzzer: the config parser (gossync::ParseConfig: TOML, keys, types,
// ranges). It must report problems, never crash or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gossync/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gossync::ConfigLoad load =
      gossync::ParseConfig(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
  (void)load;
  return 0;
}
