// The agent's configuration: one struct, each field with its unit and default
// (STYLE.md habit 8). The TOML keys are part of the contract (DESIGN.md
// section 7): keys may be added, never renamed or removed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gossync/status.h"

namespace gossync {

struct GossipConfig {
  std::string listen = "0.0.0.0:7946";  // UDP address for gossip
  std::string advertise;                // address peers use to reach us; default: listen
                                        // (an unspecified host is an error unless set)
  uint32_t interval_ms = 1000;          // gossip round, jittered +-10%
  uint32_t fanout = 2;                  // members gossiped to per round
  std::string keyring = "/etc/gossync/gossip.keys";  // AES-256-GCM keyring file
  uint32_t probe_interval_ms = 1000;    // SWIM protocol period
  uint32_t probe_timeout_ms = 500;      // ack deadline before indirect probes
  uint32_t indirect_checks = 3;         // k members asked for an indirect probe
  uint32_t suspicion_mult = 4;          // suspect timeout = mult * log10(N+1) * probe_interval
  uint32_t retransmit_mult = 4;         // piggyback an update retransmit_mult * log10(N+1) times
  uint32_t dead_reap_s = 3600;          // forget dead/left members after this many seconds
};

struct RepairConfig {
  std::string listen = "0.0.0.0:7947";  // TCP address for repair sessions
  std::string advertise;                // address peers connect to; default: listen
  std::string cert = "/etc/gossync/node.crt";
  std::string key = "/etc/gossync/node.key";
  std::string ca = "/etc/gossync/ca.crt";
  uint32_t max_sessions = 4;            // concurrent repair sessions
  uint64_t bandwidth_limit = 0;         // bytes per second across sessions; 0 = none
  std::map<std::string, std::string> pins;  // node name -> SHA-256 fingerprint (hex) of its cert
  uint32_t idle_timeout_s = 30;         // a session with no traffic for this long is dropped
  uint32_t session_timeout_s = 3600;    // hard cap on one session's duration
  uint32_t max_frame_bytes = 4 << 20;   // largest frame a peer may send
};

struct HookConfig {
  std::string pattern;                  // gitignore-style pattern over changed paths
  std::string command;                  // run with /bin/sh -c; changed paths on stdin
  uint32_t timeout_s = 60;
};

struct Config {
  std::string node;                     // unique name; equals the CN of this node's certificate
  std::string data_dir;                 // the synced directory
  std::string state_dir = "/var/lib/gossync";
  std::string admin_socket = "/run/gossync/admin.sock";
  std::vector<std::string> ignore;      // gitignore-style patterns
  std::vector<std::string> seeds;       // "host:port" of other members' gossip addresses
  std::string log_level = "info";       // trace, debug, info, warn, error
  uint32_t rescan_interval_s = 3600;    // full rescan period; 0 = never (watcher only)
  uint32_t debounce_ms = 50;            // watcher quiet time before a batch is applied
  uint64_t tombstone_ttl_s = 30ull * 24 * 3600;  // deletions are forgotten after this
  uint32_t tree_depth = 4;              // Merkle depth; the same on every node
  std::string metrics_listen;           // "127.0.0.1:9107" enables Prometheus metrics; empty = off
  GossipConfig gossip;
  RepairConfig repair;
  std::vector<HookConfig> hooks;        // [[hook]] tables
};

// The outcome of reading a config: the config (defaults where the file is
// silent) and every problem found, each naming its key ("gossip.fanout: must
// be between 1 and 16"). ok() when there is none.
struct ConfigLoad {
  Config config;
  std::vector<std::string> errors;
  bool ok() const { return errors.empty(); }
};

// Parses TOML text. `source` names it in messages. Checks syntax, unknown
// keys, types and ranges; does not touch the file system.
ConfigLoad ParseConfig(std::string_view toml_text, std::string_view source);

// Reads and parses a file, then also checks what the file system must hold:
// data_dir exists and is a directory, the cert/key/ca/keyring files exist and
// are readable, state_dir and the admin socket's directory exist or can be
// created. The CLI, which only needs admin_socket, calls ParseConfig.
ConfigLoad LoadConfig(const std::string& path);
ConfigLoad CheckFiles(ConfigLoad load);

// "50MiB" -> 52428800; "0" -> 0; accepts B, K/KB/KiB, M/MB/MiB, G/GB/GiB
// (decimal units are powers of 1000, binary of 1024).
Result<uint64_t> ParseByteSize(std::string_view text);

}  // namespace gossync
