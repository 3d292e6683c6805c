// SocketAddress: an IPv4 or IPv6 address and port, parsed from and formatted to text.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gossync/status.h"

namespace gossync::io {

// A value type over sockaddr_storage holding AF_INET or AF_INET6. Any thread.
class SocketAddress {
 public:
  // Parses a numeric address: "10.0.0.1:7946", "0.0.0.0:0", "[::1]:7946",
  // "[fe80::1%eth0]:7946". The port is decimal 0..65535 and required; a bare IPv6
  // address without brackets is rejected (the port would be ambiguous). Host names are
  // not looked up (see Resolve). Errors are kInvalidArgument and quote the input.
  static Result<SocketAddress> Parse(std::string_view text);
  // Copies an AF_INET / AF_INET6 sockaddr; kInvalidArgument for any other family.
  static Result<SocketAddress> FromSockaddr(const sockaddr* sa);

  SocketAddress();  // AF_UNSPEC; is_valid() is false

  bool is_valid() const { return family() == AF_INET || family() == AF_INET6; }
  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  // The address without the port: "10.0.0.1", "::1", "fe80::1%eth0".
  std::string host() const;
  // "10.0.0.1:7946" or "[::1]:7946"; Parse(ToString()) gives back an equal address.
  std::string ToString() const;
  // The same address with another port.
  SocketAddress WithPort(uint16_t port) const;

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t sockaddr_len() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) { return !(a == b); }

 private:
  sockaddr_storage storage_;
};

// Resolves "host:port" or "[v6]:port" where host may be a DNS name (getaddrinfo),
// returning every distinct address, IPv4 first. A numeric host is returned as Parse
// would. kNotFound when the name does not resolve, kUnavailable on a temporary DNS
// failure, kInvalidArgument for a malformed port.
// BLOCKS on DNS: call it from config loading or the work pool, never on the loop thread.
Result<std::vector<SocketAddress>> Resolve(std::string_view host_port);

}  // namespace gossync::io
