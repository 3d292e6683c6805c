#include "agent/cli/format.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace gossync::cli {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key, const std::string& dflt = "-") {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

int64_t Int(const json& j, const char* key, int64_t dflt = 0) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return dflt;
  return it->get<int64_t>();
}

std::string Millis(int64_t ms) {
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(ms));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ms) / 1000);
  }
  return buf;
}

const json& ArrayOr(const json& j, const char* key) {
  static const json kEmpty = json::array();
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

std::vector<std::vector<std::string>> MemberRows(const json& members, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const json& m : members) {
    rows.push_back({Str(m, "name"), Str(m, "address"), Str(m, "repair_address"), Str(m, "state"),
                    std::to_string(Int(m, "incarnation")), ShortRoot(Str(m, "root", "")),
                    std::to_string(Int(m, "entries")),
                    Ago(Int(m, "last_heard_ms"), now_ms)});
  }
  return rows;
}

const std::vector<std::string> kMemberHeader = {"NAME",        "GOSSIP",  "REPAIR",
                                                "STATE",       "INC",     "ROOT",
                                                "ENTRIES",     "LAST HEARD"};

}  // namespace

std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::ostringstream out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < width.size()) line += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  emit(header);
  for (const auto& r : rows) emit(r);
  return out.str();
}

std::string HumanBytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%.0f B", bytes);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", bytes, kUnits[u]);
  }
  return buf;
}

std::string Ago(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) return "never";
  int64_t s = std::max<int64_t>(0, (now_ms - then_ms) / 1000);
  if (s < 60) return std::to_string(s) + "s ago";
  if (s < 3600) return std::to_string(s / 60) + "m ago";
  if (s < 86400) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

std::string ShortRoot(const std::string& hex) {
  if (hex.empty()) return "-";
  return hex.substr(0, 12);
}

std::string FormatStatus(const json& s, int64_t now_ms) {
  std::ostringstream out;
  std::vector<std::vector<std::string>> kv;
  kv.push_back({"node", Str(s, "node") + " (id " + Str(s, "node_id") + ")"});
  kv.push_back({"root", Str(s, "root")});
  std::ostringstream entries;
  entries << Int(s, "entries") << " (" << Int(s, "files") << " files, " << Int(s, "directories")
          << " directories, " << Int(s, "symlinks") << " symlinks; " << Int(s, "tombstones")
          << " tombstones)";
  kv.push_back({"entries", entries.str()});
  if (auto it = s.find("scan"); it != s.end() && it->is_object()) {
    const json& scan = *it;
    std::string line = Str(scan, "state");
    if (Int(scan, "last_full_scan_ms") > 0) {
      line += ", last full scan " + Ago(Int(scan, "last_full_scan_ms"), now_ms) + " in " +
              Millis(Int(scan, "last_scan_duration_ms"));
    }
    if (scan.value("watch_limit_reached", false)) {
      line += "; inotify watch limit reached, relying on periodic rescans";
    }
    kv.push_back({"scan", line});
  }
  const json& members = ArrayOr(s, "members");
  if (s.contains("converged")) {
    kv.push_back({"converged", s.value("converged", false) ? "yes" : "no"});
  }
  for (const auto& row : kv) out << row[0] << std::string(11 - row[0].size(), ' ') << row[1] << "\n";
  if (!members.empty()) {
    out << "\nmembers\n" << Table(kMemberHeader, MemberRows(members, now_ms));
  }
  const json& sessions = ArrayOr(s, "sessions");
  if (!sessions.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const json& x : sessions) {
      rows.push_back({Str(x, "id"), Str(x, "peer"), Str(x, "state"),
                      std::to_string(Int(x, "entries_received")) + "/" +
                          std::to_string(Int(x, "entries_sent")),
                      HumanBytes(static_cast<double>(Int(x, "bytes_received"))) + "/" +
                          HumanBytes(static_cast<double>(Int(x, "bytes_sent"))),
                      Ago(Int(x, "started_ms"), now_ms)});
    }
    out << "\nsessions\n"
        << Table({"ID", "PEER", "STATE", "ENTRIES IN/OUT", "BYTES IN/OUT", "STARTED"}, rows);
  }
  const json& last = ArrayOr(s, "last_sync");
  if (!last.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const json& x : last) {
      rows.push_back({Str(x, "peer"), Ago(Int(x, "time_ms"), now_ms),
                      std::to_string(Int(x, "entries_applied")),
                      HumanBytes(static_cast<double>(Int(x, "bytes_received")))});
    }
    out << "\nlast sync\n" << Table({"PEER", "WHEN", "ENTRIES", "BYTES IN"}, rows);
  }
  return out.str();
}

std::string FormatPeers(const json& peers, int64_t now_ms) {
  return Table(kMemberHeader, MemberRows(peers, now_ms));
}

std::string FormatConflicts(const json& conflicts) {
  std::vector<std::vector<std::string>> rows;
  for (const json& c : conflicts) {
    rows.push_back({Str(c, "path"), Str(c, "original"), Str(c, "origin"),
                    HumanBytes(static_cast<double>(Int(c, "size")))});
  }
  if (rows.empty()) return "no conflict copies\n";
  return Table({"CONFLICT COPY", "OF", "LOSING NODE", "SIZE"}, rows);
}

std::string FormatDiff(const json& diff) {
  std::vector<std::vector<std::string>> rows;
  for (const char* dir : {"pull", "push", "conflict"}) {
    for (const json& e : ArrayOr(diff, dir)) {
      rows.push_back({dir, Str(e, "path"), Str(e, "kind"),
                      e.value("deleted", false) ? "delete" : HumanBytes(double(Int(e, "size")))});
    }
  }
  std::ostringstream out;
  out << "peer " << Str(diff, "peer") << ": " << ArrayOr(diff, "pull").size() << " to pull, "
      << ArrayOr(diff, "push").size() << " to push, " << ArrayOr(diff, "conflict").size()
      << " in conflict\n";
  if (!rows.empty()) out << Table({"DIRECTION", "PATH", "KIND", "CHANGE"}, rows);
  return out.str();
}

std::string FormatSync(const json& sync) {
  std::vector<std::vector<std::string>> rows;
  for (const json& r : ArrayOr(sync, "results")) {
    rows.push_back({Str(r, "peer"), r.value("ok", false) ? "ok" : "failed",
                    std::to_string(Int(r, "entries_applied")),
                    HumanBytes(static_cast<double>(Int(r, "bytes_received"))),
                    Str(r, "error", "")});
  }
  if (rows.empty()) return "nothing to sync: every member has our root\n";
  return Table({"PEER", "RESULT", "ENTRIES", "BYTES IN", "ERROR"}, rows);
}

}  // namespace gossync::cli
