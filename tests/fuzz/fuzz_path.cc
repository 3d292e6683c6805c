// libFuzzer: the path rules (core::ValidatePath, NormalizePath and the
// helpers). A normalized path always validates and normalizes to itself; a
// valid path normalizes to itself; parent and base name put it back together.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/core/path.h"
#include "gossync/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gossync::core;
  std::string_view p(reinterpret_cast<const char*>(data), size);
  gossync::Status valid = ValidatePath(p);
  gossync::Result<std::string> norm = NormalizePath(p);
  if (norm.ok()) {
    GOSSYNC_CHECK(ValidatePath(*norm).ok());
    gossync::Result<std::string> again = NormalizePath(*norm);
    GOSSYNC_CHECK(again.ok() && *again == *norm);
  }
  if (valid.ok()) {
    GOSSYNC_CHECK(norm.ok() && *norm == p);
    GOSSYNC_CHECK(IsValidUtf8(p));
    GOSSYNC_CHECK(p.size() <= kMaxPathBytes);
    std::string_view parent = ParentPath(p), base = BaseName(p);
    GOSSYNC_CHECK(!base.empty() && base.find('/') == std::string_view::npos);
    GOSSYNC_CHECK(base != "." && base != "..");
    if (parent.empty()) {
      GOSSYNC_CHECK(base == p);
    } else {
      GOSSYNC_CHECK(ValidatePath(parent).ok());
      GOSSYNC_CHECK(std::string(parent) + "/" + std::string(base) == p);
    }
    GOSSYNC_CHECK(IsUnder(p, parent) && IsUnder(p, p) && IsUnder(p, ""));
  }
  return 0;
}
