// Logging set-up: spdlog to stderr (journald picks it up), one line per
// event, `key=value` fields after a short event name, one named logger per
// module (STYLE.md habit 11): "agent", "scan", "gossip", "repair", "admin", "io".
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "gossync/status.h"

namespace gossync::daemon {

// Creates the module loggers writing to stderr. Call once, before anything logs.
void InitLogging(const std::string& level);
// Changes every logger's level (SIGHUP). REQUIRES: a valid level name.
Status SetLogLevel(const std::string& level);
// The named logger, created on first use with the current level and sink.
std::shared_ptr<spdlog::logger> Logger(const std::string& name);

}  // namespace gossync::daemon
