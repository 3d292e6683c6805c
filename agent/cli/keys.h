// Key and certificate set-up commands: keygen, ca init, ca issue. Each
// returns what `--json` prints, with a human "message".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gossync/status.h"

namespace gossync::cli {

// Writes a keyring with one new AES-256 gossip key (mode 0600).
Result<nlohmann::json> Keygen(const std::string& out, bool force);
// Writes DIR/ca.crt and DIR/ca.key.
Result<nlohmann::json> CaInit(const std::string& dir, bool force);
// Writes DIR/NODE.crt and DIR/NODE.key signed by DIR/ca.key.
Result<nlohmann::json> CaIssue(const std::string& dir, const std::string& node, int days);

}  // namespace gossync::cli
