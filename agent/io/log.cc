#include "agent/io/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace gossync::io {

spdlog::logger& Log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("io")) return existing;
    try {
      return spdlog::stderr_color_mt("io");
    } catch (const spdlog::spdlog_ex&) {
      // Another thread registered "io" between get() and create(): use theirs.
      return spdlog::get("io");
    }
  }();
  return *logger;
}

}  // namespace gossync::io
