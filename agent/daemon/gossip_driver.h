// GossipDriver: core::Membership on a real UDP socket (DESIGN.md section 3).
// It seals every datagram with the cluster keyring (AES-256-GCM), opens and
// decodes what arrives, feeds the state machine and carries out its actions.
// Everything that goes wrong with a datagram costs a counter, nothing more.
//
// Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/core/membership.h"
#include "agent/io/timer.h"
#include "agent/io/udp.h"
#include "agent/tls/keyring.h"
#include "gossync/config.h"

namespace gossync::daemon {

class GossipDriver {
 public:
  struct Callbacks {
    // A live member advertises a root other than ours.
    std::function<void(const core::RootDiffers&)> on_root_differs;
    // A member appeared, changed state or was forgotten.
    std::function<void(const core::MemberEvent&)> on_member_event;
  };

  GossipDriver(uv_loop_t* loop, const Config& config, Callbacks callbacks);
  ~GossipDriver();

  struct Persisted {
    uint64_t boot_id = 0;
    uint64_t incarnation = 0;
  };

  // Loads the keyring, binds the socket, resolves the seeds and starts the
  // protocol. `repair_addr` is what peers dial for repair.
  Status Start(const std::string& repair_addr);
  // Our dataset as gossip advertises it.
  void SetLocalState(const core::Hash256& root, uint64_t entries, uint64_t hlc);
  // SIGHUP: a new keyring and seed list. A keyring that does not load is an
  // error and the old one stays.
  Status Reload(const Config& next);
  // Graceful leave: tells the cluster, keeps the socket for about one gossip
  // interval so the news goes out, then `done`.
  void Leave(std::function<void()> done);

  const core::Membership& membership() const { return *membership_; }
  std::string gossip_address() const;
  // Every alive member has gossiped a root equal to `root`.
  bool Converged(const core::Hash256& root) const;
  // The CLI's views: members (peers, status) and counters (status).
  nlohmann::json MembersJson() const;
  nlohmann::json CountersJson() const;

 private:
  void OnDatagram(std::span<const uint8_t> bytes, const io::SocketAddress& from);
  void Execute(core::Actions& actions);
  void Arm();
  void Drop(const std::string& reason);
  uint64_t Now() const;
  // Wall-clock ms of a monotonic `now`-based time, for the CLI.
  int64_t ToWall(uint64_t mono_ms) const;

  uv_loop_t* loop_;
  Config config_;
  Callbacks callbacks_;
  std::unique_ptr<tls::Keyring> keyring_;
  std::unique_ptr<io::UdpSocket> socket_;
  std::unique_ptr<io::Timer> timer_;
  std::unique_ptr<io::Timer> leave_timer_;
  std::unique_ptr<io::Timer> push_timer_;
  core::Hash256 advertised_root_{};
  uint64_t last_push_ms_ = 0;
  static constexpr uint64_t kPushSpacingMs = 50;
  std::unique_ptr<core::Membership> membership_;
  core::Actions actions_;
  std::map<std::string, uint64_t> drops_;  // by reason, before the state machine
  uint64_t packets_in_ = 0;
  uint64_t packets_out_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  bool leaving_ = false;
  std::string state_path_;  // state_dir/gossip.state
  Persisted persisted_;  // what the next run must beat
};

// The address peers should use to reach a socket bound to `listen`:
// `advertise` if set; else `listen`, with an unspecified host (0.0.0.0)
// replaced by this machine's first non-loopback IPv4 address.
std::string AdvertisedAddress(const std::string& listen, const std::string& advertise);

}  // namespace gossync::daemon
