// Everything `gossyncd --check-config` verifies, also run at start: the
// config file (syntax, keys, values, files) and what the files hold (the
// keyring parses; the certificate, key and CA load, match, and name this node).
#pragma once

#include <string>

#include "gossync/config.h"

namespace gossync::daemon {

ConfigLoad CheckConfig(const std::string& path);

}  // namespace gossync::daemon
