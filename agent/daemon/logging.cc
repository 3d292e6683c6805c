#include "agent/daemon/logging.h"

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace gossync::daemon {
namespace {

std::mutex mu;
spdlog::sink_ptr sink;
spdlog::level::level_enum current = spdlog::level::info;

spdlog::sink_ptr Sink() {
  if (!sink) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    // UTC timestamp, level, module, then "event key=value ...".
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %l %n %v", spdlog::pattern_time_type::utc));
  }
  return sink;
}

}  // namespace

void InitLogging(const std::string& level) {
  std::lock_guard<std::mutex> lock(mu);
  current = spdlog::level::from_str(level);
  for (const char* name : {"agent", "scan", "gossip", "repair", "admin", "io"}) {
    if (!spdlog::get(name)) {
      auto l = std::make_shared<spdlog::logger>(name, Sink());
      l->set_level(current);
      spdlog::register_logger(l);
    }
  }
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(current); });
}

Status SetLogLevel(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Status::InvalidArgument("unknown log level " + level);
  }
  std::lock_guard<std::mutex> lock(mu);
  current = lvl;
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(current); });
  return Status::Ok();
}

std::shared_ptr<spdlog::logger> Logger(const std::string& name) {
  if (auto l = spdlog::get(name)) return l;
  std::lock_guard<std::mutex> lock(mu);
  if (auto l = spdlog::get(name)) return l;
  auto l = std::make_shared<spdlog::logger>(name, Sink());
  l->set_level(current);
  spdlog::register_logger(l);
  return l;
}

}  // namespace gossync::daemon
