#include "agent/daemon/metrics.h"

#include <cmath>
#include <cstdio>
#include <optional>

namespace gossync::daemon {
namespace {

using Labels = std::vector<std::pair<std::string_view, std::string>>;
using nlohmann::json;

// A number from `j[key]`, or nullopt when absent or not a number.
std::optional<double> Num(const json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

const json& Obj(const json& j, const char* key) {
  static const json kEmpty = json::object();
  if (!j.is_object()) return kEmpty;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : kEmpty;
}

// A family with one unlabelled sample, if the field exists.
void One(MetricsWriter& w, const json& j, const char* key, std::string_view name,
         std::string_view type, std::string_view help, double scale = 1) {
  std::optional<double> v = Num(j, key);
  if (!v) return;
  w.Family(name, type, help);
  w.Sample(name, *v * scale);
}

// A family with one sample per key of the object `j[key]`, labelled `label`.
void ByKey(MetricsWriter& w, const json& j, const char* key, std::string_view name,
           std::string_view type, std::string_view help, std::string_view label) {
  const json& o = Obj(j, key);
  w.Family(name, type, help);
  for (const auto& [k, v] : o.items()) {
    if (v.is_number()) w.Sample(name, {{label, k}}, v.get<double>());
  }
}

void Summary(MetricsWriter& w, std::string_view name, const Labels& labels,
             const DurationSummary& d) {
  std::string base(name);
  w.Sample(base + "_sum", labels, d.sum_s);
  w.Sample(base + "_count", labels, double(d.count));
}

void Node(MetricsWriter& w, const json& s, int64_t now_ms) {
  w.Family("gossync_build_info", "gauge", "Always 1; the labels name the node and version.");
  w.Sample("gossync_build_info",
           {{"node", s.value("node", "")}, {"version", s.value("version", "")}}, 1);
  if (s.contains("ready")) {
    w.Family("gossync_ready", "gauge", "1 once the first scan is done and the agent syncs.");
    w.Sample("gossync_ready", s.value("ready", false) ? 1 : 0);
  }
  One(w, s, "uptime_s", "gossync_uptime_seconds", "gauge", "Seconds since the agent started.");
  if (s.contains("converged")) {
    w.Family("gossync_converged", "gauge", "1 when every alive member advertises our root.");
    w.Sample("gossync_converged", s.value("converged", false) ? 1 : 0);
  }
  if (std::optional<double> at = Num(s, "root_changed_ms"); at && *at > 0) {
    w.Family("gossync_root_age_seconds", "gauge", "Seconds since our Merkle root last changed.");
    w.Sample("gossync_root_age_seconds", std::max(0.0, (double(now_ms) - *at) / 1000.0));
  }
  w.Family("gossync_entries", "gauge", "Live entries in the index, by kind.");
  for (const auto& [key, kind] : {std::pair{"files", "file"}, std::pair{"directories", "directory"},
                                  std::pair{"symlinks", "symlink"}}) {
    if (auto v = Num(s, key)) w.Sample("gossync_entries", {{"kind", kind}}, *v);
  }
  One(w, s, "tombstones", "gossync_tombstones", "gauge",
      "Deletions remembered in the index (purged after tombstone_ttl_s).");
}

void Members(MetricsWriter& w, const json& s, const MetricsExtras& x, int64_t now_ms) {
  const json& g = Obj(Obj(s, "counters"), "gossip");
  ByKey(w, g, "members", "gossync_members", "gauge",
        "Other members known to gossip, by state (alive, suspect, dead, left).", "state");
  w.Family("gossync_peer_agreement_age_seconds", "gauge",
           "Seconds since the peer last advertised our root (0: it does now); a peer that "
           "never did counts from when we first saw it.");
  if (x.agreement) {
    for (const auto& [peer, at] : x.agreement->last()) {
      w.Sample("gossync_peer_agreement_age_seconds", {{"peer", peer}},
               std::max(0.0, double(now_ms - at) / 1000.0));
    }
  }
  ByKey(w, g, "drops", "gossync_gossip_drops_total", "counter",
        "Gossip datagrams dropped, by reason (open_*: did not decrypt; decode_*: did not "
        "parse; the rest: refused by the membership protocol).",
        "reason");
  w.Family("gossync_gossip_packets_total", "counter", "Gossip datagrams, by direction.");
  if (auto v = Num(g, "packets_in"))
    w.Sample("gossync_gossip_packets_total", {{"direction", "in"}}, *v);
  if (auto v = Num(g, "packets_out")) {
    w.Sample("gossync_gossip_packets_total", {{"direction", "out"}}, *v);
  }
  w.Family("gossync_gossip_bytes_total", "counter", "Gossip bytes on the wire, by direction.");
  if (auto v = Num(g, "bytes_in"))
    w.Sample("gossync_gossip_bytes_total", {{"direction", "in"}}, *v);
  if (auto v = Num(g, "bytes_out"))
    w.Sample("gossync_gossip_bytes_total", {{"direction", "out"}}, *v);
  ByKey(w, g, "udp", "gossync_gossip_udp_errors_total", "counter",
        "UDP socket problems: oversize or queue_full drops, send and receive errors.", "kind");
  One(w, g, "suspicions", "gossync_gossip_suspicions_total", "counter",
      "Members this node suspected of having failed.");
  One(w, g, "refutations", "gossync_gossip_refutations_total", "counter",
      "Suspicions of this node that it refuted.");
}

void Scan(MetricsWriter& w, const json& s, const MetricsExtras& x) {
  const json& sc = Obj(s, "scan");
  One(w, sc, "full_scans", "gossync_scans_total", "counter", "Full scans of data_dir done.");
  w.Family("gossync_scan_duration_seconds", "summary", "Duration of full scans.");
  Summary(w, "gossync_scan_duration_seconds", {}, x.scan);
  One(w, sc, "last_scan_duration_ms", "gossync_scan_last_duration_seconds", "gauge",
      "Duration of the last full scan.", 0.001);
  One(w, sc, "pending_paths", "gossync_scan_pending_paths", "gauge",
      "Paths the watcher reported that are waiting to be looked at.");
  One(w, sc, "hashed_files", "gossync_scan_hashed_files_total", "counter", "Files hashed.");
  One(w, sc, "hashed_bytes", "gossync_scan_hashed_bytes_total", "counter", "Bytes hashed.");
  One(w, sc, "watcher_overflows", "gossync_watcher_overflows_total", "counter",
      "inotify queue overflows (each one costs a full scan).");
  One(w, sc, "walk_errors", "gossync_scan_walk_errors", "gauge",
      "Directories the last full scan could not read.");
  One(w, sc, "rejected", "gossync_scan_rejected_total", "counter",
      "Local changes the index refused (bad names, special files).");
}

void Repair(MetricsWriter& w, const json& s, const MetricsExtras& x) {
  const json& r = Obj(Obj(s, "counters"), "repair");
  One(w, r, "sessions_active", "gossync_repair_sessions_active", "gauge",
      "Repair sessions running or connecting.");
  w.Family("gossync_repair_sessions_total", "counter", "Repair sessions ended, by result.");
  if (auto v = Num(r, "sessions_ok"))
    w.Sample("gossync_repair_sessions_total", {{"result", "ok"}}, *v);
  if (auto v = Num(r, "sessions_failed")) {
    w.Sample("gossync_repair_sessions_total", {{"result", "failed"}}, *v);
  }
  One(w, r, "refused", "gossync_repair_refused_total", "counter",
      "Incoming connections refused: TLS handshake or peer check failed, or too busy.");
  One(w, r, "entries_applied", "gossync_repair_entries_applied_total", "counter",
      "Entries changed here by repair sessions.");
  w.Family("gossync_repair_bytes_total", "counter",
           "File content moved by repair sessions, by direction.");
  if (auto v = Num(r, "bytes_received")) {
    w.Sample("gossync_repair_bytes_total", {{"direction", "received"}}, *v);
  }
  if (auto v = Num(r, "bytes_sent"))
    w.Sample("gossync_repair_bytes_total", {{"direction", "sent"}}, *v);
  w.Family("gossync_repair_wire_bytes_total", "counter",
           "TLS bytes of ended repair sessions (frames, metadata and content), by direction.");
  if (auto v = Num(r, "wire_bytes_in")) {
    w.Sample("gossync_repair_wire_bytes_total", {{"direction", "in"}}, *v);
  }
  if (auto v = Num(r, "wire_bytes_out")) {
    w.Sample("gossync_repair_wire_bytes_total", {{"direction", "out"}}, *v);
  }
  One(w, r, "conflicts", "gossync_repair_conflicts_total", "counter",
      "Concurrent versions resolved by repair (each kept a conflict copy or merged).");
  ByKey(w, r, "aborts", "gossync_repair_aborts_total", "counter",
        "Repair sessions aborted, by counter (the reason class).", "counter");
  w.Family("gossync_repair_session_duration_seconds", "summary",
           "Duration of repair sessions (not dry runs), by result.");
  for (const auto& [result, d] : x.repair) {
    Summary(w, "gossync_repair_session_duration_seconds", {{"result", result}}, d);
  }
  One(w, r, "temp_files_removed", "gossync_temp_files_removed_total", "counter",
      "Stale temp files of abandoned transfers removed.");
}

void Hooks(MetricsWriter& w, const json& s) {
  const json& h = Obj(Obj(s, "counters"), "hooks");
  if (h.empty()) return;
  const json hooks = h.value("hooks", json::array());
  struct Field {
    const char* key;
    const char* name;
    const char* help;
  };
  for (const Field& f :
       {Field{"runs", "gossync_hook_runs_total", "Hook processes started."},
        Field{"failed", "gossync_hook_failures_total",
              "Hook runs that failed: non-zero exit, signal, timeout or spawn error."},
        Field{"timeouts", "gossync_hook_timeouts_total", "Hook runs killed after timeout_s."},
        Field{"seconds_sum", "gossync_hook_run_seconds_total", "Time spent in hook runs."}}) {
    w.Family(f.name, "counter", f.help);
    for (size_t i = 0; i < hooks.size(); ++i) {
      if (auto v = Num(hooks[i], f.key)) {
        w.Sample(f.name, {{"hook", std::to_string(i)}, {"pattern", hooks[i].value("pattern", "")}},
                 *v);
      }
    }
  }
  One(w, h, "running", "gossync_hooks_running", "gauge", "Hook processes running now.");
}

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.9g", v);
  }
  return buf;
}

void MetricsWriter::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  // HELP text escapes only backslash and newline.
  for (char c : help) {
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsWriter::Sample(std::string_view name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first;
      out_ += "=\"";
      out_ += EscapeLabelValue(labels[i].second);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += FormatValue(value);
  out_ += '\n';
}

void AgreementTracker::Observe(int64_t now_ms, const core::Hash256& ours,
                               const std::vector<core::MemberView>& members) {
  bool root_changed = have_ours_ && ours != ours_;
  std::map<std::string, int64_t> next;
  for (const core::MemberView& m : members) {
    auto it = last_.find(m.name);
    int64_t at = it != last_.end() ? it->second : now_ms;  // first sight
    bool agrees = m.state == core::MemberState::kAlive && m.has_root &&
                  (m.root == ours || (root_changed && m.root == ours_));
    next[m.name] = agrees ? now_ms : at;
  }
  last_ = std::move(next);
  ours_ = ours;
  have_ours_ = true;
}

int64_t AgreementTracker::LastAgreementMs(const std::string& peer) const {
  auto it = last_.find(peer);
  return it == last_.end() ? 0 : it->second;
}

std::string RenderMetrics(const nlohmann::json& status, const MetricsExtras& extras,
                          int64_t now_ms) {
  MetricsWriter w;
  Node(w, status, now_ms);
  Members(w, status, extras, now_ms);
  Scan(w, status, extras);
  Repair(w, status, extras);
  Hooks(w, status);
  return w.text();
}

}  // namespace gossync::daemon
