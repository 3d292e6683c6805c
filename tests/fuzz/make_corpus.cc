// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/):
// valid encodings of each message type, entry kind and config shape, plus a
// few near misses. Run from the fuzz build: make_corpus tests/fuzz/corpus
// (the files are committed; rerun only when a format changes).
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "agent/core/entry.h"
#include "agent/core/gossip_types.h"
#include "agent/core/hash.h"
#include "agent/core/repair_messages.h"
#include "agent/tls/keyring.h"
#include "agent/tls/seal.h"
#include "agent/wire/entry_codec.h"
#include "agent/wire/frame.h"
#include "agent/wire/gossip_codec.h"
#include "agent/wire/repair_codec.h"

namespace {

using namespace gossync;
std::string g_root;

void Put(const std::string& target, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::string dir = g_root + "/" + target;
  mkdir(g_root.c_str(), 0755);
  mkdir(dir.c_str(), 0755);
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void Put(const std::string& target, const std::string& name, const std::string& s) {
  Put(target, name, std::vector<uint8_t>(s.begin(), s.end()));
}

core::Entry File(const std::string& path, const std::string& content) {
  core::Entry e;
  e.path = path;
  e.mode = 0644;
  e.size = content.size();
  e.mtime_ns = 1'700'000'000'123'456'789;
  e.hash = core::Sha256(std::string_view(content));
  e.vv = core::VersionVector({{1, 3}, {7, 1}});
  e.hlc = uint64_t{1'700'000'000'000} << 16;
  e.origin = "alpha";
  return e;
}

std::vector<core::Entry> Entries() {
  core::Entry f = File("dir/file.txt", "hello");
  core::Entry d = File("dir", "");
  d.kind = core::EntryKind::kDirectory;
  d.mode = 0755;
  d.hash = {};
  d.size = 0;
  d.mtime_ns = 0;
  core::Entry l = File("dir/link", "file.txt");
  l.kind = core::EntryKind::kSymlink;
  l.mode = 0777;
  l.target = "file.txt";
  core::Entry t = File("gone.csv", "");
  t.deleted = true;
  t.hash = {};
  t.size = 0;
  core::Entry u = File("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt", "utf8");
  return {f, d, l, t, u};
}

std::vector<std::pair<std::string, core::RepairMessage>> Messages() {
  core::HelloMsg hello{1, "alpha", 4, {}, 1234, 99, core::kHelloDryRun};
  hello.root.fill(0xab);
  core::NodesMsg nodes{1, {core::NodeItem{0, {}}}};
  for (int i = 0; i < 16; ++i) nodes.items[0].digests[i] = uint64_t(i) * 0x0101010101010101ull;
  core::LeavesMsg leaves{{core::LeafItem{0x1234, {{1, 2}, {3, 4}}}}};
  core::BlockListMsg list{5, 300000, core::kDefaultBlockSize, 0, {{}, {}, {}}, true};
  return {
      {"hello", hello},
      {"nodes", nodes},
      {"leaves", leaves},
      {"entries", core::EntriesMsg{Entries()}},
      {"want", core::WantMsg{{1, 2, 0xffffffffffffffffull}}},
      {"blocklist_req", core::BlockListReqMsg{5, "dir/file.txt", core::Sha256("x")}},
      {"blocklist", list},
      {"block_req", core::BlockReqMsg{6, "dir/file.txt", core::Sha256("x"), {0, 1, 2}}},
      {"block", core::BlockMsg{6, 1, {1, 2, 3, 4, 5}}},
      {"req_error", core::ReqErrorMsg{6, 2, "changed on disk"}},
      {"fin", core::FinMsg{}},
      {"fin_ack", core::FinAckMsg{}},
      {"abort", core::AbortMsg{"bad_path: ../x"}},
  };
}

std::vector<std::pair<std::string, core::Packet>> Packets() {
  auto base = [](core::Body body) {
    core::Packet p;
    p.sender = core::MakeMemberInfo("alpha", "10.0.0.1:7946", "10.0.0.1:7947");
    p.incarnation = 1700000000;
    p.boot_id = (uint64_t{1700000000123} << 16) | 0xbeef;
    p.seq = 42;
    p.to = "beta";
    p.to_boot = 99;
    p.body = std::move(body);
    return p;
  };
  std::vector<core::MemberUpdate> updates = {
      {core::MemberState::kAlive, 7, core::MakeMemberInfo("gamma", "[::1]:7946", "gamma.lan:7947"),
       55, {}},
      {core::MemberState::kSuspect, 3, core::MakeMemberInfo("delta", "", ""), 0, "alpha"},
      {core::MemberState::kDead, 4, core::MakeMemberInfo("eps", "", ""), 0, "beta"},
      {core::MemberState::kLeft, 9, core::MakeMemberInfo("zeta", "", ""), 0, {}},
  };
  core::Gossip g{{}, 12, 34};
  g.root.fill(0x42);
  std::vector<std::pair<std::string, core::Packet>> out = {
      {"ping", base(core::Ping{7, 3, core::MemberState::kSuspect})},
      {"ack", base(core::Ack{7})},
      {"ping_req", base(core::PingReq{8, "gamma", "10.0.0.3:7946", 5, 2, core::MemberState::kAlive})},
      {"gossip", base(g)},
      {"sync_request", base(core::SyncRequest{0})},
      {"sync_page", base(core::SyncPage{3, true})},
  };
  core::Packet join = base(core::Ping{1, 0, core::MemberState::kAlive});
  join.to = "";
  join.to_boot = 0;
  out.push_back({"join", join});
  core::Packet with = base(g);
  with.updates = updates;
  out.push_back({"gossip_updates", with});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  g_root = argv[1];

  for (const auto& [name, m] : Messages()) {
    std::vector<uint8_t> body = wire::EncodeMessage(m);
    Put("repair_message", name, body);
    std::vector<uint8_t> stream = {7};  // the chunking byte
    std::vector<uint8_t> f = wire::EncodeFrame(body);
    stream.insert(stream.end(), f.begin(), f.end());
    Put("repair_frame", name, stream);
  }
  {
    // A whole session's worth of frames; a cut one; a length over the maximum.
    std::vector<uint8_t> all = {1};
    for (const auto& [name, m] : Messages()) {
      std::vector<uint8_t> f = wire::EncodeMessageFrame(m);
      all.insert(all.end(), f.begin(), f.end());
    }
    Put("repair_frame", "session", all);
    std::vector<uint8_t> cut(all.begin(), all.begin() + static_cast<long>(all.size() / 2));
    Put("repair_frame", "cut", cut);
    Put("repair_frame", "huge_length", std::vector<uint8_t>{3, 0xff, 0xff, 0xff, 0xff, 0x90});
    Put("repair_message", "array32_4g", std::vector<uint8_t>{0xdd, 0xff, 0xff, 0xff, 0xff});
    Put("repair_message", "unknown_type", std::vector<uint8_t>{0x92, 0xcc, 0xc8, 0x01});
  }
  for (const core::Entry& e : Entries()) {
    Put("entry", e.deleted ? "tombstone" : core::KindName(e.kind) + std::string(e.path.size() > 12 ? "_utf8" : ""),
        wire::EncodeEntry(e));
  }
  for (const auto& [name, p] : Packets()) Put("gossip_packet", name, wire::EncodeGossipPacket(p));

  const char* paths[] = {"a", "a/b/c.txt", "dir/sub/", "./a/./b", "a//b", "../x", "/etc/passwd",
                         "a/../../x", ".", "", "a\\b", "caf\xc3\xa9/x", "\xff\xfe",
                         "\xc0\xae\xc0\xae/x", "a/.gossync-tmp"};
  int i = 0;
  for (const char* p : paths) Put("path", "p" + std::to_string(i++), std::string(p));
  Put("path", "nul", std::string("a\0b", 3));
  Put("path", "long_component", std::string(256, 'x'));

  Put("config", "full", std::string(R"(node = "alpha"
data_dir = "/srv/shared"
state_dir = "/var/lib/gossync"
admin_socket = "/run/gossync/admin.sock"
ignore = ["*.swp", "cache/"]
seeds = ["10.0.0.2:7946", "10.0.0.3:7946"]
log_level = "info"
rescan_interval_s = 3600
tree_depth = 4

[gossip]
listen = "0.0.0.0:7946"
advertise = "10.0.0.1:7946"
interval_ms = 1000
fanout = 2
keyring = "/etc/gossync/gossip.keys"

[repair]
listen = "0.0.0.0:7947"
advertise = "10.0.0.1:7947"
cert = "/etc/gossync/node.crt"
key = "/etc/gossync/node.key"
ca = "/etc/gossync/ca.crt"
max_sessions = 4
bandwidth_limit = "50MiB"
idle_timeout_s = 30

[repair.pins]
beta = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"

[[hook]]
pattern = "*.csv"
command = "echo changed"
timeout_s = 5
)"));
  Put("config", "minimal", std::string("node = \"a\"\ndata_dir = \"/d\"\n"));
  Put("config", "bad", std::string("node = 3\n[gossip]\nfanout = 99\nunknown = true\n[[[x"));

  // Sealed under the fuzz target's first key (fuzz_seal_open.cc).
  std::vector<tls::GossipKeyBytes> keys(2);
  for (size_t k = 0; k < keys[0].size(); ++k) {
    keys[0][k] = static_cast<uint8_t>(k);
    keys[1][k] = static_cast<uint8_t>(255 - k);
  }
  tls::Keyring ring = std::move(*tls::Keyring::FromKeys(keys));
  for (const auto& [name, p] : Packets()) {
    std::vector<uint8_t> sealed;
    if (tls::Seal(ring, wire::EncodeGossipPacket(p), &sealed).ok()) {
      Put("seal_open", name, sealed);
    }
  }
  Put("seal_open", "short", std::vector<uint8_t>{1, 2, 3});
  return 0;
}
