#include "agent/core/membership_config.h"

#include <cmath>

#include "agent/core/entry.h"

namespace gossync::core {

namespace {
void Range(std::string* errors, const char* key, uint64_t v, uint64_t lo, uint64_t hi) {
  if (v < lo || v > hi) {
    *errors += std::string(errors->empty() ? "" : "; ") + key + ": must be " + std::to_string(lo) +
               ".." + std::to_string(hi) + ", not " + std::to_string(v);
  }
}
}  // namespace

Status MembershipConfig::Validate() const {
  std::string e;
  auto fail = [&e](const std::string& what) { e += (e.empty() ? "" : "; ") + what; };
  if (!IsValidNodeName(name)) fail("name: not a valid node name: '" + name + "'");
  if (!gossip_addr.empty() && !IsValidHostPort(gossip_addr)) {
    fail("gossip_addr: not host:port: '" + gossip_addr + "'");
  }
  if (!repair_addr.empty() && !IsValidHostPort(repair_addr)) {
    fail("repair_addr: not host:port: '" + repair_addr + "'");
  }
  if (boot_id == 0) fail("boot_id: must be a random nonzero number");
  for (const std::string& s : seeds) {
    if (!IsValidHostPort(s)) fail("seeds: not host:port: '" + s + "'");
  }
  Range(&e, "probe_interval_ms", probe_interval_ms, 10, 600000);
  Range(&e, "probe_timeout_ms", probe_timeout_ms, 1, probe_interval_ms);
  Range(&e, "indirect_checks", indirect_checks, 0, 16);
  Range(&e, "suspicion_mult", suspicion_mult, 1, 100);
  Range(&e, "suspicion_max_mult", suspicion_max_mult, 1, 100);
  Range(&e, "retransmit_mult", retransmit_mult, 1, 100);
  Range(&e, "gossip_interval_ms", gossip_interval_ms, 10, 600000);
  Range(&e, "gossip_jitter_pct", gossip_jitter_pct, 0, 50);
  Range(&e, "gossip_fanout", gossip_fanout, 1, 16);
  if (broadcast_interval_ms != 0)
    Range(&e, "broadcast_interval_ms", broadcast_interval_ms, 10, 600000);
  Range(&e, "join_retry_ms", join_retry_ms, 1, 3600000);
  Range(&e, "join_retry_max_ms", join_retry_max_ms, join_retry_ms, 3600000);
  Range(&e, "dead_reap_ms", dead_reap_ms, 1, uint64_t{365} * 24 * 3600 * 1000);
  // The largest header and body (63-byte names, 255-byte addresses, a
  // PingReq) take 955 bytes; below 1024 a packet might not fit at all.
  Range(&e, "max_packet_bytes", max_packet_bytes, 1024, 65000);
  Range(&e, "max_members", max_members, 1, 1u << 24);
  Range(&e, "max_broadcasts", max_broadcasts, 1, 1u << 24);
  Range(&e, "max_pending", max_pending, 1, 4096);
  if (!e.empty()) return Status::InvalidArgument(e);
  return Status::Ok();
}

uint32_t ScaleFactor(size_t n) {
  constexpr double kThreshold = 32;
  if (n <= kThreshold) return 1;
  return 1 + static_cast<uint32_t>(
                 std::ceil(std::log2(static_cast<double>(n)) - std::log2(kThreshold)));
}

}  // namespace gossync::core
