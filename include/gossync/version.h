#pragma once

namespace gossync {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace gossync
