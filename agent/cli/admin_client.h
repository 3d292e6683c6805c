// A blocking client of the admin socket (include/gossync/admin_api.h), for
// the CLI only: it is never linked into the agent's loop.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gossync/status.h"

namespace gossync::cli {

// Sends `request` and returns the parsed response object. Fails with
// kUnavailable when nothing listens at `socket_path` (the agent is not
// running), kAborted on timeout, kCorruption on a malformed answer, and with
// the server's "error" text when it answered {"ok": false}.
Result<nlohmann::json> Call(const std::string& socket_path, const nlohmann::json& request,
                            int timeout_ms);

}  // namespace gossync::cli
