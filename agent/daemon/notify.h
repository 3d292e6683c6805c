// systemd notifications (sd_notify): READY=1 after the first scan, watchdog
// pings from the loop, STATUS= lines. Every call is a no-op when the agent
// does not run under systemd (NOTIFY_SOCKET unset).
#pragma once

#include <cstdint>
#include <string>

namespace gossync::daemon {

class Notifier {
 public:
  Notifier();
  void Ready();
  void Status(const std::string& line);
  void Stopping();
  void Reloading();
  void ReloadDone();
  // EXTEND_TIMEOUT_USEC: while starting, the start timeout (TimeoutStartSec=)
  // is extended to `ms` from now; send again before that passes.
  void ExtendTimeout(uint64_t ms);
  // Pings the watchdog; call from the loop so that a stuck loop misses pings.
  void Watchdog();
  // Half of WATCHDOG_USEC in ms, the interval to ping at; 0 when disabled.
  uint64_t watchdog_interval_ms() const { return watchdog_interval_ms_; }

 private:
  uint64_t watchdog_interval_ms_ = 0;
};

}  // namespace gossync::daemon
