// "host:port" strings as they appear in the config and on the wire.
// Pure string handling: no resolution, no sockets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gossync/status.h"

namespace gossync::config {

struct HostPort {
  std::string host;     // without brackets for IPv6
  uint16_t port = 0;
  bool numeric = false; // host is an IPv4 or IPv6 literal
  bool ipv6 = false;
  // "10.0.0.1:7946", "[::1]:7946", "node1.example:7946".
  std::string ToString() const;
};

// Accepts "a.b.c.d:port", "[v6]:port" and "hostname:port" (RFC 1123 labels).
// Port 0 is accepted (bind to any free port); 65536 and above are not.
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace gossync::config
