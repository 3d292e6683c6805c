#include "agent/daemon/notify.h"

#include <systemd/sd-daemon.h>

#include <string>

namespace gossync::daemon {

Notifier::Notifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_interval_ms_ = usec / 2000;
}

void Notifier::Ready() { sd_notify(0, "READY=1"); }
void Notifier::Status(const std::string& line) { sd_notify(0, ("STATUS=" + line).c_str()); }
void Notifier::Stopping() { sd_notify(0, "STOPPING=1"); }
void Notifier::Reloading() { sd_notify(0, "RELOADING=1"); }
void Notifier::ReloadDone() { sd_notify(0, "READY=1"); }
void Notifier::ExtendTimeout(uint64_t ms) {
  sd_notify(0, ("EXTEND_TIMEOUT_USEC=" + std::to_string(ms * 1000)).c_str());
}
void Notifier::Watchdog() { sd_notify(0, "WATCHDOG=1"); }

}  // namespace gossync::daemon
