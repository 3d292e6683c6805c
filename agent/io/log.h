// The io layer's logger: one spdlog logger named "io" (STYLE.md habit 11).
//
// The io layer logs at debug only; it reports problems to its callers as Status
// values or counters and lets the daemon decide what deserves a warning.
#pragma once

#include <spdlog/logger.h>

namespace gossync::io {

// The "io" logger. If the daemon registered a logger named "io" before the first
// call, that one is used; otherwise one writing to stderr is created and registered.
// Thread-safe.
spdlog::logger& Log();

}  // namespace gossync::io
