// The admin socket protocol between gossyncd and the gossync CLI.
//
// A Unix stream socket (config key admin_socket, mode 0660). The client sends
// one request, a JSON object on one line ending in '\n'; the server answers
// with one JSON object on one line and closes the connection (a long request
// such as a sync answers once it is done or when its timeout passes).
//
//   request:  {"cmd": "status"}            {"cmd": "peers"}
//             {"cmd": "diff", "peer": "beta"}   {"cmd": "sync", "peer": "beta"}
//             {"cmd": "sync"}  (every member whose root differs)
//             {"cmd": "conflicts"}
//   response: {"ok": true, ...command fields...}
//             {"ok": false, "error": "unknown peer \"gamma\""}
//
// Field names are part of the operator contract (DESIGN.md section 7): add
// fields freely, never rename or remove one. `gossync <cmd> --json` prints the
// response without "ok".
#pragma once

#include <cstddef>

namespace gossync::admin {

inline constexpr size_t kMaxRequestBytes = 64 * 1024;
inline constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;
inline constexpr int kProtocolVersion = 1;

}  // namespace gossync::admin
