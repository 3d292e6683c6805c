#include "agent/daemon/gossip_driver.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <sys/types.h>

#include <fstream>

#include "agent/config/address.h"
#include "agent/daemon/logging.h"
#include "agent/io/clock.h"
#include "agent/tls/seal.h"
#include "agent/wire/gossip_codec.h"

namespace gossync::daemon {
namespace {

uint64_t RandomU64() {
  uint64_t v = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof(v));
  return v;
}

// What a run must beat: the last boot id and incarnation of this node,
// persisted in state_dir/gossip.state ("boot_id incarnation").
using Persisted = GossipDriver::Persisted;

Persisted ReadPersisted(const std::string& path) {
  Persisted p;
  std::ifstream in(path);
  in >> p.boot_id >> p.incarnation;
  return p;
}

// A small file rewritten in place through a rename; no fsync: after a power
// loss a restart one second later still beats the old run on the clock.
Status WritePersisted(const std::string& path, const Persisted& p) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << p.boot_id << " " << p.incarnation << "\n";
    out.flush();
    if (!out) return Status::IoError("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno("rename " + path, errno);
  return Status::Ok();
}

std::string FirstInterfaceIPv4() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "127.0.0.1";
  std::string out = "127.0.0.1";
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    Result<io::SocketAddress> a = io::SocketAddress::FromSockaddr(i->ifa_addr);
    if (!a.ok() || a->host().rfind("127.", 0) == 0) continue;
    out = a->host();
    break;
  }
  freeifaddrs(list);
  return out;
}

core::MembershipConfig MembershipConfigFrom(const Config& c) {
  core::MembershipConfig m;
  m.name = c.node;
  m.gossip_addr = AdvertisedAddress(c.gossip.listen, c.gossip.advertise);
  m.probe_interval_ms = c.gossip.probe_interval_ms;
  m.probe_timeout_ms = c.gossip.probe_timeout_ms;
  m.indirect_checks = c.gossip.indirect_checks;
  m.suspicion_mult = c.gossip.suspicion_mult;
  m.retransmit_mult = c.gossip.retransmit_mult;
  m.gossip_interval_ms = c.gossip.interval_ms;
  m.gossip_fanout = c.gossip.fanout;
  m.dead_reap_ms = uint64_t(c.gossip.dead_reap_s) * 1000;
  return m;
}

// Seeds as numeric "host:port"; names are looked up (blocking getaddrinfo:
// start-up and reload only). Our own address is left out.
std::vector<std::string> ResolveSeeds(const std::vector<std::string>& seeds,
                                      const std::string& self) {
  std::vector<std::string> out;
  for (const std::string& s : seeds) {
    Result<std::vector<io::SocketAddress>> r = io::Resolve(s);
    if (!r.ok() || r->empty()) {
      Logger("gossip")->warn("seed_unresolved seed=\"{}\" error=\"{}\"", s, r.status().message());
      continue;
    }
    std::string a = r->front().ToString();
    if (a != self) out.push_back(a);
  }
  return out;
}

}  // namespace

std::string AdvertisedAddress(const std::string& listen, const std::string& advertise) {
  if (!advertise.empty()) return advertise;
  Result<config::HostPort> hp = config::ParseHostPort(listen);
  if (!hp.ok()) return listen;
  if (hp->host == "0.0.0.0" || hp->host == "::") {
    return FirstInterfaceIPv4() + ":" + std::to_string(hp->port);
  }
  return listen;
}

GossipDriver::GossipDriver(uv_loop_t* loop, const Config& config, Callbacks callbacks)
    : loop_(loop), config_(config), callbacks_(std::move(callbacks)) {}

GossipDriver::~GossipDriver() = default;

uint64_t GossipDriver::Now() const { return io::MonotonicMillis(); }

int64_t GossipDriver::ToWall(uint64_t mono_ms) const {
  if (mono_ms == 0) return 0;
  return static_cast<int64_t>(io::WallMillis()) - static_cast<int64_t>(Now() - mono_ms);
}

std::string GossipDriver::gossip_address() const {
  return membership_ ? membership_->config().gossip_addr : "";
}

Status GossipDriver::Start(const std::string& repair_addr) {
  auto log = Logger("gossip");
  Result<tls::LoadedKeyring> ring = tls::LoadKeyring(config_.gossip.keyring);
  if (!ring.ok()) return ring.status().Prefixed("gossip.keyring");
  if (!ring->warning.empty()) log->warn("keyring {}", ring->warning);
  keyring_ = std::make_unique<tls::Keyring>(std::move(ring->keyring));

  Result<io::SocketAddress> listen = io::SocketAddress::Parse(config_.gossip.listen);
  if (!listen.ok()) return listen.status().Prefixed("gossip.listen");
  io::UdpOptions opts;
  opts.max_datagram = core::kMaxDatagramBytes;
  Result<std::unique_ptr<io::UdpSocket>> sock = io::UdpSocket::Bind(
      loop_, *listen, opts,
      [this](std::span<const uint8_t> bytes, const io::SocketAddress& from) {
        OnDatagram(bytes, from);
      });
  if (!sock.ok()) return sock.status().Prefixed("gossip.listen " + config_.gossip.listen);
  socket_ = std::move(*sock);

  core::MembershipConfig mc = MembershipConfigFrom(config_);
  mc.repair_addr = repair_addr;
  // Boot ids and incarnations grow across restarts (core/membership.h,
  // "Replay protection"): a restart within the same second as the last
  // start, or after refutations raised the incarnation, still beats the old
  // run's alive, dead or left record.
  state_path_ = config_.state_dir + "/gossip.state";
  Persisted last = ReadPersisted(state_path_);
  mc.boot_id = std::max((io::WallMillis() << 16) | (RandomU64() & 0xffff), last.boot_id + 1);
  mc.initial_incarnation = std::max<uint64_t>(io::WallMillis() / 1000, last.incarnation + 1);
  persisted_ = {mc.boot_id, mc.initial_incarnation};
  if (Status s = WritePersisted(state_path_, persisted_); !s.ok()) return s.Prefixed("state_dir");
  mc.rng_seed = RandomU64();
  mc.seeds = ResolveSeeds(config_.seeds, mc.gossip_addr);
  if (Status s = mc.Validate(); !s.ok()) return s.Prefixed("gossip");
  membership_ = std::make_unique<core::Membership>(std::move(mc));
  timer_ = io::Timer::Create(loop_);
  push_timer_ = io::Timer::Create(loop_);
  log->info("gossip_started listen={} advertise={} seeds={} boot_id={}", config_.gossip.listen,
            membership_->config().gossip_addr, membership_->config().seeds.size(),
            membership_->boot_id());
  Arm();
  return Status::Ok();
}

void GossipDriver::SetLocalState(const core::Hash256& root, uint64_t entries, uint64_t hlc) {
  if (!membership_) return;
  bool changed = root != advertised_root_;
  advertised_root_ = root;
  membership_->SetLocalState(root, entries, hlc);
  if (!changed || leaving_) return;
  // A new root is pushed at once rather than at the next round, at most once
  // per kPushSpacingMs (a repair publishes many roots in a row).
  uint64_t now = Now();
  if (now >= last_push_ms_ + kPushSpacingMs) {
    last_push_ms_ = now;
    membership_->PushState(now, &actions_);
    Execute(actions_);
  } else if (!push_timer_->active()) {
    push_timer_->Start(last_push_ms_ + kPushSpacingMs - now, [this] {
      last_push_ms_ = Now();
      membership_->PushState(last_push_ms_, &actions_);
      Execute(actions_);
    });
  }
}

Status GossipDriver::Reload(const Config& next) {
  Result<tls::LoadedKeyring> ring = tls::LoadKeyring(next.gossip.keyring);
  if (!ring.ok()) return ring.status().Prefixed("gossip.keyring");
  if (!ring->warning.empty()) Logger("gossip")->warn("keyring {}", ring->warning);
  keyring_ = std::make_unique<tls::Keyring>(std::move(ring->keyring));
  config_.gossip.keyring = next.gossip.keyring;
  config_.seeds = next.seeds;
  membership_->SetSeeds(ResolveSeeds(next.seeds, membership_->config().gossip_addr));
  Logger("gossip")->info("reloaded keys={} seeds={}", keyring_->size(), next.seeds.size());
  return Status::Ok();
}

void GossipDriver::Leave(std::function<void()> done) {
  if (!membership_ || leaving_) {
    if (done) done();
    return;
  }
  leaving_ = true;
  membership_->Leave(Now(), &actions_);
  Execute(actions_);
  // Keep answering and gossiping the left state for one interval.
  leave_timer_ = io::Timer::Create(loop_);
  leave_timer_->Start(config_.gossip.interval_ms, [this, done = std::move(done)] {
    timer_->Close();
    push_timer_->Close();
    socket_.reset();
    if (done) done();
  });
}

void GossipDriver::Arm() {
  if (!timer_ || !timer_->is_open()) return;
  uint64_t now = Now();
  uint64_t next = membership_->NextTickMs();
  timer_->Start(next > now ? next - now : 0, [this] {
    membership_->Tick(Now(), &actions_);
    Execute(actions_);
  });
}

void GossipDriver::Drop(const std::string& reason) { ++drops_[reason]; }

void GossipDriver::OnDatagram(std::span<const uint8_t> bytes, const io::SocketAddress& from) {
  ++packets_in_;
  bytes_in_ += bytes.size();
  std::vector<uint8_t> plain;
  Status opened = tls::Open(*keyring_, bytes, &plain);
  if (!opened.ok()) {
    Drop(std::string("open_") + tls::OpenErrorName(tls::ClassifyOpenError(opened)));
    return;
  }
  wire::GossipDecodeInfo info;
  Result<core::Packet> packet = wire::DecodeGossipPacket(plain, &info);
  if (!packet.ok()) {
    Drop(std::string("decode_") + wire::GossipDropName(info.drop));
    Logger("gossip")->debug("dropped from={} error=\"{}\"", from.ToString(),
                            packet.status().message());
    return;
  }
  membership_->HandlePacket(Now(), from.ToString(), *packet, &actions_);
  Execute(actions_);
}

void GossipDriver::Execute(core::Actions& actions) {
  auto log = Logger("gossip");
  std::vector<uint8_t> sealed;
  for (const core::Outgoing& o : actions.sends) {
    if (!socket_) break;
    Result<io::SocketAddress> to = io::SocketAddress::Parse(o.to);
    if (!to.ok()) {
      Drop("bad_destination");
      continue;
    }
    std::vector<uint8_t> plain = wire::EncodeGossipPacket(o.packet);
    if (!tls::Seal(*keyring_, plain, &sealed).ok()) {
      Drop("seal_failed");
      continue;
    }
    if (socket_->Send(*to, sealed).ok()) {
      ++packets_out_;
      bytes_out_ += sealed.size();
    } else {
      Drop("send_failed");
    }
  }
  for (const core::MemberEvent& e : actions.events) {
    std::string from = e.from ? core::MemberStateName(*e.from) : "new";
    std::string to = e.to ? core::MemberStateName(*e.to) : "reaped";
    auto level = (e.to && (*e.to == core::MemberState::kDead)) ? spdlog::level::warn
                                                                : spdlog::level::info;
    log->log(level, "member name={} from={} to={} incarnation={} addr={}", e.name, from, to,
             e.incarnation, e.gossip_addr);
    if (callbacks_.on_member_event) callbacks_.on_member_event(e);
  }
  for (const core::NameConflict& c : actions.conflicts) {
    log->warn("name_conflict name={} known_addr={} claimed_addr={}", c.name, c.known_addr,
              c.claimed_addr);
  }
  for (const core::RootDiffers& r : actions.root_differs) {
    log->debug("root_differs member={} root={}", r.member, core::ToHex(r.root).substr(0, 12));
    if (callbacks_.on_root_differs) callbacks_.on_root_differs(r);
  }
  actions.Clear();
  if (membership_->incarnation() != persisted_.incarnation) {
    persisted_.incarnation = membership_->incarnation();
    if (Status s = WritePersisted(state_path_, persisted_); !s.ok()) {
      log->warn("persist_failed error=\"{}\"", s.message());
    }
  }
  Arm();
}

bool GossipDriver::Converged(const core::Hash256& root) const {
  if (!membership_) return true;
  for (const core::MemberView& m : membership_->Members()) {
    if (m.state != core::MemberState::kAlive) continue;
    if (!m.has_root || m.root != root) return false;
  }
  return true;
}

nlohmann::json GossipDriver::MembersJson() const {
  nlohmann::json out = nlohmann::json::array();
  if (!membership_) return out;
  std::vector<core::MemberView> members = membership_->Members();
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const core::MemberView& m : members) {
    out.push_back({
        {"name", m.name},
        {"address", m.gossip_addr},
        {"repair_address", m.repair_addr},
        {"state", core::MemberStateName(m.state)},
        {"incarnation", m.incarnation},
        {"root", m.has_root ? core::ToHex(m.root) : ""},
        {"entries", m.entry_count},
        {"hlc", m.hlc},
        {"last_heard_ms", ToWall(m.last_heard_ms)},
        {"state_changed_ms", ToWall(m.state_change_ms)},
    });
  }
  return out;
}

nlohmann::json GossipDriver::CountersJson() const {
  nlohmann::json drops = nlohmann::json::object();
  for (const auto& [reason, n] : drops_) drops[reason] = n;
  nlohmann::json j = {
      {"packets_in", packets_in_}, {"packets_out", packets_out_}, {"bytes_in", bytes_in_},
      {"bytes_out", bytes_out_},   {"drops", drops},
  };
  if (membership_) {
    const core::MembershipStats& s = membership_->stats();
    for (int i = 0; i < core::kDropCount; ++i) {
      if (s.drops[i]) j["drops"][core::DropName(static_cast<core::Drop>(i))] = s.drops[i];
    }
    j["probes"] = s.probes;
    j["indirect_probes"] = s.indirect_probes;
    j["suspicions"] = s.suspicions;
    j["refutations"] = s.refutations;
    j["incarnation"] = membership_->incarnation();
    nlohmann::json by_state = nlohmann::json::object();
    for (core::MemberState st : {core::MemberState::kAlive, core::MemberState::kSuspect,
                                 core::MemberState::kDead, core::MemberState::kLeft}) {
      by_state[core::MemberStateName(st)] = membership_->Count(st);
    }
    j["members"] = by_state;
  }
  if (socket_) {
    const io::UdpCounters& u = socket_->counters();
    j["udp"] = {{"oversize", u.dropped_oversize},
                {"queue_full", u.dropped_queue_full},
                {"send_errors", u.send_errors},
                {"receive_errors", u.receive_errors}};
  }
  return j;
}

}  // namespace gossync::daemon
