#include <catch2/catch.hpp>

#include "agent/config/address.h"
#include "gossync/config.h"

namespace gossync {
namespace {

const char* kMinimal = R"(
node = "alpha"
data_dir = "/srv/shared"
)";

bool HasError(const ConfigLoad& l, std::string_view needle) {
  for (const auto& e : l.errors) {
    if (e.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string AllErrors(const ConfigLoad& l) {
  std::string s;
  for (const auto& e : l.errors) s += e + "\n";
  return s;
}

TEST_CASE("Config: the DESIGN.md example parses with every key", "[config]") {
  const char* text = R"(
node = "alpha"                 # unique; equals the name in this node's certificate
data_dir = "/srv/shared"
state_dir = "/var/lib/gossync"
admin_socket = "/run/gossync/admin.sock"
ignore = ["*.swp", "cache/"]
seeds = ["10.0.0.2:7946", "10.0.0.3:7946"]   # the peer list

[gossip]
listen = "0.0.0.0:7946"
interval_ms = 1000
fanout = 2
keyring = "/etc/gossync/gossip.keys"

[repair]
listen = "0.0.0.0:7947"
advertise = "10.0.0.1:7947"    # optional
cert = "/etc/gossync/node.crt"
key = "/etc/gossync/node.key"
ca = "/etc/gossync/ca.crt"
max_sessions = 4
bandwidth_limit = "50MiB"
)";
  ConfigLoad l = ParseConfig(text, "example.toml");
  INFO(AllErrors(l));
  REQUIRE(l.ok());
  const Config& c = l.config;
  CHECK(c.node == "alpha");
  CHECK(c.data_dir == "/srv/shared");
  CHECK(c.ignore == std::vector<std::string>{"*.swp", "cache/"});
  CHECK(c.seeds.size() == 2);
  CHECK(c.gossip.fanout == 2);
  CHECK(c.repair.advertise == "10.0.0.1:7947");
  CHECK(c.repair.max_sessions == 4);
  CHECK(c.repair.bandwidth_limit == 50ull << 20);
}

TEST_CASE("Config: defaults apply where the file is silent", "[config]") {
  ConfigLoad l = ParseConfig(kMinimal, "min.toml");
  INFO(AllErrors(l));
  REQUIRE(l.ok());
  CHECK(l.config.state_dir == "/var/lib/gossync");
  CHECK(l.config.gossip.interval_ms == 1000);
  CHECK(l.config.repair.bandwidth_limit == 0);
  CHECK(l.config.tree_depth == 4);
  CHECK(l.config.tombstone_ttl_s == 30ull * 24 * 3600);
}

TEST_CASE("Config: an unknown key is an error naming it", "[config]") {
  ConfigLoad l = ParseConfig(std::string(kMinimal) + "colour = 1\n[gossip]\nfanuot = 3\n", "x");
  CHECK(HasError(l, "colour: unknown key"));
  CHECK(HasError(l, "gossip.fanuot: unknown key"));
}

TEST_CASE("Config: every problem is listed, each naming its key", "[config]") {
  const char* text = R"(
node = "Bad Name!"
data_dir = "relative/dir"
seeds = ["10.0.0.2", "10.0.0.3:99999", 7]
log_level = "chatty"
[gossip]
fanout = 0
interval_ms = "fast"
[repair]
max_sessions = -1
bandwidth_limit = "12 parsecs"
listen = "example.com:7947"
pins = { alpha = "xyz" }
)";
  ConfigLoad l = ParseConfig(text, "bad.toml");
  INFO(AllErrors(l));
  CHECK(HasError(l, "node: \"Bad Name!\" is not a valid node name"));
  CHECK(HasError(l, "data_dir: must be an absolute path"));
  CHECK(HasError(l, "seeds[0]:"));
  CHECK(HasError(l, "seeds[1]:"));
  CHECK(HasError(l, "seeds: element 2 must be a string"));
  CHECK(HasError(l, "log_level:"));
  CHECK(HasError(l, "gossip.fanout: must be between 1 and 16"));
  CHECK(HasError(l, "gossip.interval_ms: must be an integer"));
  CHECK(HasError(l, "repair.max_sessions: must be between"));
  CHECK(HasError(l, "repair.bandwidth_limit: unknown unit"));
  CHECK(HasError(l, "repair.listen: must be a numeric IP address"));
  CHECK(HasError(l, "repair.pins.alpha: must be a SHA-256 fingerprint"));
  CHECK(l.errors.size() == 12);
}

TEST_CASE("Config: missing required keys are reported", "[config]") {
  ConfigLoad l = ParseConfig("", "empty.toml");
  CHECK(HasError(l, "node: is required"));
  CHECK(HasError(l, "data_dir: is required"));
}

TEST_CASE("Config: a TOML syntax error gives file, line and column", "[config]") {
  ConfigLoad l = ParseConfig("node = \"a\"\ndata_dir = [\n", "broken.toml");
  REQUIRE(l.errors.size() == 1);
  CHECK(l.errors[0].rfind("broken.toml:", 0) == 0);
}

TEST_CASE("Config: hooks parse and need a pattern and a command", "[config]") {
  std::string text = std::string(kMinimal) + R"(
[[hook]]
pattern = "certs/*.pem"
command = "systemctl reload nginx"
timeout_s = 30
[[hook]]
pattern = "x"
)";
  ConfigLoad l = ParseConfig(text, "hooks.toml");
  REQUIRE(l.config.hooks.size() == 2);
  CHECK(l.config.hooks[0].command == "systemctl reload nginx");
  CHECK(l.config.hooks[0].timeout_s == 30);
  CHECK(HasError(l, "hook[1].command: is required"));
  CHECK(l.errors.size() == 1);
}

TEST_CASE("Config: LoadConfig checks the files the agent will read", "[config]") {
  char dir[] = "/tmp/gossync-config-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/c.toml";
  FILE* f = fopen(path.c_str(), "w");
  REQUIRE(f);
  fprintf(f, "node = \"a\"\ndata_dir = \"%s/nope\"\n[repair]\nca = \"%s/ca.crt\"\n", dir, dir);
  fclose(f);
  ConfigLoad l = LoadConfig(path);
  INFO(AllErrors(l));
  CHECK(HasError(l, "data_dir: \"" + std::string(dir) + "/nope\": No such file or directory"));
  CHECK(HasError(l, "repair.ca: \"" + std::string(dir) + "/ca.crt\""));
  CHECK(LoadConfig(std::string(dir) + "/missing.toml").errors.at(0).find("cannot read") !=
        std::string::npos);
  std::remove(path.c_str());
  rmdir(dir);
}

TEST_CASE("ParseByteSize: units and bad input", "[config]") {
  CHECK(*ParseByteSize("0") == 0);
  CHECK(*ParseByteSize("1048576") == 1048576);
  CHECK(*ParseByteSize("500KB") == 500000);
  CHECK(*ParseByteSize("50MiB") == 50ull << 20);
  CHECK(*ParseByteSize("2 GiB") == 2ull << 30);
  CHECK_FALSE(ParseByteSize("").ok());
  CHECK_FALSE(ParseByteSize("MiB").ok());
  CHECK_FALSE(ParseByteSize("-5").ok());
  CHECK_FALSE(ParseByteSize("5 TiB").ok());
  CHECK_FALSE(ParseByteSize("99999999999999999999").ok());
  CHECK_FALSE(ParseByteSize("18446744073709551615GiB").ok());
}

TEST_CASE("ParseHostPort: accepts addresses and names, rejects the rest", "[config]") {
  auto v4 = config::ParseHostPort("10.0.0.1:7946");
  REQUIRE(v4.ok());
  CHECK(v4->numeric);
  CHECK(v4->port == 7946);
  auto v6 = config::ParseHostPort("[::1]:7947");
  REQUIRE(v6.ok());
  CHECK(v6->ipv6);
  CHECK(v6->ToString() == "[::1]:7947");
  auto name = config::ParseHostPort("node-2.example.com:7946");
  REQUIRE(name.ok());
  CHECK_FALSE(name->numeric);
  for (const char* bad : {"", "10.0.0.1", "10.0.0.1:", ":7946", "10.0.0.1:65536", "::1:7946",
                          "[::1]7946", "[zz]:1", "a b:1", "-x:1", "10.0.0.1:12a"}) {
    INFO(bad);
    CHECK_FALSE(config::ParseHostPort(bad).ok());
  }
}

}  // namespace
}  // namespace gossync

namespace gossync {
namespace {

TEST_CASE("Config: tombstone_ttl_s goes down to 60 seconds, no lower", "[config]") {
  ConfigLoad ok = ParseConfig(std::string(kMinimal) + "tombstone_ttl_s = 60\n", "ttl.toml");
  INFO(AllErrors(ok));
  REQUIRE(ok.ok());
  CHECK(ok.config.tombstone_ttl_s == 60);
  ConfigLoad low = ParseConfig(std::string(kMinimal) + "tombstone_ttl_s = 59\n", "ttl.toml");
  CHECK_FALSE(low.ok());
  CHECK(HasError(low, "tombstone_ttl_s: must be between 60"));
}

}  // namespace
}  // namespace gossync
