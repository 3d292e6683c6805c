#include "gossync/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "agent/config/address.h"
#include "agent/core/entry.h"
#include "agent/core/merkle_tree.h"

namespace gossync {
namespace {

// Collects problems, each prefixed with the key it is about.
class Checker {
 public:
  explicit Checker(std::vector<std::string>* errors) : errors_(errors) {}
  void Error(std::string_view key, std::string_view what) {
    std::string m(key);
    m += ": ";
    m += what;
    errors_->push_back(std::move(m));
  }

  // Reports keys of `table` that are not in `known`, as "prefix.key".
  void UnknownKeys(const toml::table& table, std::string_view prefix,
                   const std::set<std::string_view>& known) {
    for (const auto& [k, v] : table) {
      if (!known.count(k.str())) Error(Join(prefix, k.str()), "unknown key");
    }
  }

  static std::string Join(std::string_view prefix, std::string_view key) {
    if (prefix.empty()) return std::string(key);
    std::string s(prefix);
    s += '.';
    s += key;
    return s;
  }

  void String(const toml::table& t, std::string_view prefix, std::string_view key,
              std::string* out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    if (auto v = n->value_exact<std::string>()) {
      *out = *v;
    } else {
      Error(Join(prefix, key), "must be a string");
    }
  }

  template <typename Int>
  void Integer(const toml::table& t, std::string_view prefix, std::string_view key, Int* out,
               int64_t min, int64_t max, std::string_view unit) {
    const toml::node* n = t.get(key);
    if (!n) return;
    auto v = n->value_exact<int64_t>();
    if (!v) {
      Error(Join(prefix, key), "must be an integer");
      return;
    }
    if (*v < min || *v > max) {
      std::ostringstream m;
      m << "must be between " << min << " and " << max;
      if (!unit.empty()) m << " " << unit;
      m << ", got " << *v;
      Error(Join(prefix, key), m.str());
      return;
    }
    *out = static_cast<Int>(*v);
  }

  void StringList(const toml::table& t, std::string_view prefix, std::string_view key,
                  std::vector<std::string>* out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) {
      Error(Join(prefix, key), "must be an array of strings");
      return;
    }
    out->clear();
    for (size_t i = 0; i < a->size(); ++i) {
      auto v = a->get(i)->value_exact<std::string>();
      if (!v) {
        Error(Join(prefix, key), "element " + std::to_string(i) + " must be a string");
        continue;
      }
      out->push_back(*v);
    }
  }

 private:
  std::vector<std::string>* errors_;
};

void CheckAddress(Checker& c, std::string_view key, const std::string& value, bool listen) {
  Result<config::HostPort> hp = config::ParseHostPort(value);
  if (!hp.ok()) {
    c.Error(key, hp.status().message());
    return;
  }
  if (listen && !hp->numeric) c.Error(key, "must be a numeric IP address and port, got \"" + value + "\"");
}

void ParseGossip(Checker& c, const toml::table& t, GossipConfig* g) {
  c.UnknownKeys(t, "gossip",
                {"listen", "advertise", "interval_ms", "fanout", "keyring", "probe_interval_ms",
                 "probe_timeout_ms", "indirect_checks", "suspicion_mult", "retransmit_mult",
                 "dead_reap_s"});
  c.String(t, "gossip", "listen", &g->listen);
  c.String(t, "gossip", "advertise", &g->advertise);
  c.Integer(t, "gossip", "interval_ms", &g->interval_ms, 10, 600000, "ms");
  c.Integer(t, "gossip", "fanout", &g->fanout, 1, 16, "");
  c.String(t, "gossip", "keyring", &g->keyring);
  c.Integer(t, "gossip", "probe_interval_ms", &g->probe_interval_ms, 10, 600000, "ms");
  c.Integer(t, "gossip", "probe_timeout_ms", &g->probe_timeout_ms, 1, 600000, "ms");
  c.Integer(t, "gossip", "indirect_checks", &g->indirect_checks, 0, 16, "");
  c.Integer(t, "gossip", "suspicion_mult", &g->suspicion_mult, 1, 100, "");
  c.Integer(t, "gossip", "retransmit_mult", &g->retransmit_mult, 1, 100, "");
  c.Integer(t, "gossip", "dead_reap_s", &g->dead_reap_s, 1, 30 * 24 * 3600, "s");
}

void ParseRepair(Checker& c, const toml::table& t, RepairConfig* r) {
  c.UnknownKeys(t, "repair",
                {"listen", "advertise", "cert", "key", "ca", "max_sessions", "bandwidth_limit",
                 "pins", "idle_timeout_s", "session_timeout_s", "max_frame_bytes"});
  c.String(t, "repair", "listen", &r->listen);
  c.String(t, "repair", "advertise", &r->advertise);
  c.String(t, "repair", "cert", &r->cert);
  c.String(t, "repair", "key", &r->key);
  c.String(t, "repair", "ca", &r->ca);
  c.Integer(t, "repair", "max_sessions", &r->max_sessions, 1, 256, "");
  if (const toml::node* n = t.get("bandwidth_limit")) {
    // A string with a unit ("50MiB") or a plain integer of bytes per second.
    if (auto s = n->value_exact<std::string>()) {
      Result<uint64_t> v = ParseByteSize(*s);
      if (v.ok()) {
        r->bandwidth_limit = *v;
      } else {
        c.Error("repair.bandwidth_limit", v.status().message());
      }
    } else if (auto i = n->value_exact<int64_t>(); i && *i >= 0) {
      r->bandwidth_limit = static_cast<uint64_t>(*i);
    } else {
      c.Error("repair.bandwidth_limit", "must be a byte rate such as \"50MiB\" or 0");
    }
  }
  if (const toml::node* n = t.get("pins")) {
    const toml::table* pins = n->as_table();
    if (!pins) {
      c.Error("repair.pins", "must be a table of node name = \"sha256 hex\"");
    } else {
      for (const auto& [name, v] : *pins) {
        std::string key = "repair.pins." + std::string(name.str());
        auto fp = v.value_exact<std::string>();
        core::Hash256 h;
        if (!core::IsValidNodeName(name.str())) {
          c.Error(key, "not a valid node name");
        } else if (!fp || !core::FromHex(*fp, &h)) {
          c.Error(key, "must be a SHA-256 fingerprint as 64 hex digits");
        } else {
          r->pins[std::string(name.str())] = core::ToHex(h);
        }
      }
    }
  }
  c.Integer(t, "repair", "idle_timeout_s", &r->idle_timeout_s, 1, 86400, "s");
  c.Integer(t, "repair", "session_timeout_s", &r->session_timeout_s, 1, 7 * 86400, "s");
  c.Integer(t, "repair", "max_frame_bytes", &r->max_frame_bytes, 64 << 10, 64 << 20, "bytes");
}

void ParseHooks(Checker& c, const toml::node& n, std::vector<HookConfig>* hooks) {
  const toml::array* a = n.as_array();
  if (!a || !a->is_array_of_tables()) {
    c.Error("hook", "must be an array of tables ([[hook]])");
    return;
  }
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::table& t = *a->get(i)->as_table();
    std::string prefix = "hook[" + std::to_string(i) + "]";
    c.UnknownKeys(t, prefix, {"pattern", "command", "timeout_s"});
    HookConfig h;
    c.String(t, prefix, "pattern", &h.pattern);
    c.String(t, prefix, "command", &h.command);
    c.Integer(t, prefix, "timeout_s", &h.timeout_s, 1, 86400, "s");
    if (h.pattern.empty()) c.Error(prefix + ".pattern", "is required");
    if (h.command.empty()) c.Error(prefix + ".command", "is required");
    hooks->push_back(std::move(h));
  }
}

bool IsAbsolute(const std::string& p) { return !p.empty() && p[0] == '/'; }

// The files the agent reads, by key.
std::vector<std::pair<const char*, const std::string*>> FilePaths(const Config& cfg) {
  return {{"gossip.keyring", &cfg.gossip.keyring},
          {"repair.cert", &cfg.repair.cert},
          {"repair.key", &cfg.repair.key},
          {"repair.ca", &cfg.repair.ca}};
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) {
    return Status::InvalidArgument("not a byte size: \"" + std::string(text) +
                                   "\" (use e.g. 0, 1048576, \"500KB\" or \"50MiB\")");
  }
  std::string_view unit(end, s.data() + s.size() - end);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  static const std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},           {"B", 1},
      {"K", 1000},       {"KB", 1000},       {"KiB", 1024},
      {"M", 1000000},    {"MB", 1000000},    {"MiB", 1 << 20},
      {"G", 1000000000}, {"GB", 1000000000}, {"GiB", 1 << 30},
  };
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) {
      if (n > UINT64_MAX / mult) return Status::InvalidArgument("byte size too large");
      return n * mult;
    }
  }
  return Status::InvalidArgument("unknown unit \"" + std::string(unit) + "\" in \"" +
                                 std::string(text) + "\" (B, KB, KiB, MB, MiB, GB, GiB)");
}

ConfigLoad ParseConfig(std::string_view toml_text, std::string_view source) {
  ConfigLoad out;
  Checker c(&out.errors);
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
      << e.description();
    out.errors.push_back(m.str());
    return out;
  }

  Config& cfg = out.config;
  c.UnknownKeys(root, "",
                {"node", "data_dir", "state_dir", "admin_socket", "ignore", "seeds", "log_level",
                 "rescan_interval_s", "debounce_ms", "tombstone_ttl_s", "tree_depth",
                 "metrics_listen", "gossip", "repair", "hook"});
  c.String(root, "", "node", &cfg.node);
  c.String(root, "", "data_dir", &cfg.data_dir);
  c.String(root, "", "state_dir", &cfg.state_dir);
  c.String(root, "", "admin_socket", &cfg.admin_socket);
  c.StringList(root, "", "ignore", &cfg.ignore);
  c.StringList(root, "", "seeds", &cfg.seeds);
  c.String(root, "", "log_level", &cfg.log_level);
  c.Integer(root, "", "rescan_interval_s", &cfg.rescan_interval_s, 0, 7 * 86400, "s");
  c.Integer(root, "", "debounce_ms", &cfg.debounce_ms, 1, 10000, "ms");
  c.Integer(root, "", "tombstone_ttl_s", &cfg.tombstone_ttl_s, 60, 10ll * 365 * 86400, "s");
  c.Integer(root, "", "tree_depth", &cfg.tree_depth, core::kMinTreeDepth, core::kMaxTreeDepth, "");
  c.String(root, "", "metrics_listen", &cfg.metrics_listen);

  if (const toml::node* n = root.get("gossip")) {
    if (const toml::table* t = n->as_table()) {
      ParseGossip(c, *t, &cfg.gossip);
    } else {
      c.Error("gossip", "must be a table ([gossip])");
    }
  }
  if (const toml::node* n = root.get("repair")) {
    if (const toml::table* t = n->as_table()) {
      ParseRepair(c, *t, &cfg.repair);
    } else {
      c.Error("repair", "must be a table ([repair])");
    }
  }
  if (const toml::node* n = root.get("hook")) ParseHooks(c, *n, &cfg.hooks);

  // Values that need more than a type check.
  if (cfg.node.empty()) {
    c.Error("node", "is required");
  } else if (!core::IsValidNodeName(cfg.node)) {
    c.Error("node", "\"" + cfg.node +
                        "\" is not a valid node name (1-63 of a-z 0-9 . _ -, starting with a "
                        "letter or digit)");
  }
  if (cfg.data_dir.empty()) {
    c.Error("data_dir", "is required");
  } else if (!IsAbsolute(cfg.data_dir)) {
    c.Error("data_dir", "must be an absolute path");
  }
  if (!IsAbsolute(cfg.state_dir)) c.Error("state_dir", "must be an absolute path");
  if (!IsAbsolute(cfg.admin_socket)) c.Error("admin_socket", "must be an absolute path");
  if (cfg.admin_socket.size() >= 108) c.Error("admin_socket", "is longer than 107 bytes");
  static const std::set<std::string_view> kLevels = {"trace", "debug", "info",
                                                     "warn",  "error", "off"};
  if (!kLevels.count(cfg.log_level)) {
    c.Error("log_level", "must be one of trace, debug, info, warn, error, off");
  }
  for (size_t i = 0; i < cfg.seeds.size(); ++i) {
    CheckAddress(c, "seeds[" + std::to_string(i) + "]", cfg.seeds[i], false);
  }
  CheckAddress(c, "gossip.listen", cfg.gossip.listen, true);
  CheckAddress(c, "repair.listen", cfg.repair.listen, true);
  if (!cfg.gossip.advertise.empty()) {
    CheckAddress(c, "gossip.advertise", cfg.gossip.advertise, true);
  }
  if (!cfg.repair.advertise.empty()) {
    CheckAddress(c, "repair.advertise", cfg.repair.advertise, true);
  }
  if (!cfg.metrics_listen.empty()) CheckAddress(c, "metrics_listen", cfg.metrics_listen, true);
  if (cfg.gossip.probe_timeout_ms >= cfg.gossip.probe_interval_ms) {
    c.Error("gossip.probe_timeout_ms", "must be less than gossip.probe_interval_ms");
  }
  for (const auto& [key, p] : FilePaths(cfg)) {
    if (!IsAbsolute(*p)) c.Error(key, "must be an absolute path");
  }
  return out;
}

ConfigLoad LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoad out;
    out.errors.push_back(path + ": cannot read: " + std::strerror(errno));
    return out;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return CheckFiles(ParseConfig(text.str(), path));
}

ConfigLoad CheckFiles(ConfigLoad load) {
  const Config& cfg = load.config;
  Checker c(&load.errors);
  struct stat st;
  auto stat_error = [&](std::string_view key, const std::string& p) {
    c.Error(key, "\"" + p + "\": " + std::strerror(errno));
  };
  if (IsAbsolute(cfg.data_dir)) {
    if (stat(cfg.data_dir.c_str(), &st) != 0) {
      stat_error("data_dir", cfg.data_dir);
    } else if (!S_ISDIR(st.st_mode)) {
      c.Error("data_dir", "\"" + cfg.data_dir + "\" is not a directory");
    }
  }
  if (IsAbsolute(cfg.state_dir) && stat(cfg.state_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    c.Error("state_dir", "\"" + cfg.state_dir + "\" is not a directory");
  }
  for (const auto& [key, p] : FilePaths(cfg)) {
    if (!IsAbsolute(*p)) continue;
    if (access(p->c_str(), R_OK) != 0) stat_error(key, *p);
  }
  return load;
}

}  // namespace gossync
