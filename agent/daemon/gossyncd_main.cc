// gossyncd: the gossync agent. Runs in the foreground (systemd Type=notify).
//
//   gossyncd --config FILE                 run
//   gossyncd --check-config --config FILE  validate: exit 0, or 2 with one line per problem
#include <stdlib.h>

#include <cstdio>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "agent/daemon/agent.h"
#include "agent/daemon/check.h"
#include "agent/daemon/logging.h"
#include "agent/io/loop.h"
#include "agent/io/signal.h"
#include "gossync/config.h"
#include "gossync/version.h"

int main(int argc, char** argv) {
  using namespace gossync;
  CLI::App app{"gossyncd: keeps a directory identical on every server of a fleet"};
  app.set_version_flag("--version", std::string(kVersion));
  std::string config_path = "/etc/gossync/gossync.toml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "config file (default /etc/gossync/gossync.toml)");
  app.add_flag("--check-config", check_only, "validate the config and exit (0 ok, 2 problems)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  ConfigLoad load = daemon::CheckConfig(config_path);
  if (!load.ok()) {
    for (const auto& e : load.errors) std::fprintf(stderr, "%s: %s\n", config_path.c_str(), e.c_str());
    return 2;
  }
  if (check_only) {
    std::printf("%s: OK\n", config_path.c_str());
    return 0;
  }

  // Hashing and index work share libuv's pool: size it to the machine (before
  // the pool's first use; libuv reads it once).
  unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  setenv("UV_THREADPOOL_SIZE", std::to_string(cores + 2).c_str(), /*overwrite=*/0);

  daemon::InitLogging(load.config.log_level);
  io::IgnoreSigpipe();
  Result<std::unique_ptr<io::Loop>> loop = io::Loop::Create();
  if (!loop.ok()) {
    std::fprintf(stderr, "gossyncd: %s\n", loop.status().message().c_str());
    return 1;
  }
  int code = 0;
  {
    daemon::Agent agent(loop->get(), load.config, config_path);
    Status s = agent.Start();
    if (!s.ok()) {
      daemon::Logger("agent")->critical("start_failed error=\"{}\"", s.message());
      return 1;
    }
    (*loop)->Run();
    code = agent.exit_code();
  }
  return code;
}
