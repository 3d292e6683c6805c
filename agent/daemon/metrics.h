// Prometheus metrics of the agent (docs/operations.md, "Metrics"): the text
// exposition format 0.0.4, rendered from the agent's status JSON
// (Agent::StatusJson, the same numbers `gossync status --json` shows) plus
// what only the metrics keep: per-peer agreement times and durations.
//
// Loop thread only; RenderMetrics and MetricsWriter are pure.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/hash.h"
#include "agent/core/membership_types.h"

namespace gossync::daemon {

// Writes metric families in the text format: "# HELP" and "# TYPE" once per
// family, then its samples. Label values are escaped (\\, \", \n).
class MetricsWriter {
 public:
  // Starts a family. `type`: counter, gauge or summary.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of the current family (or of `name` = family + "_sum" and the
  // like). Labels are (name, value) pairs in order.
  void Sample(std::string_view name,
              const std::vector<std::pair<std::string_view, std::string>>& labels, double value);
  void Sample(std::string_view name, double value) { Sample(name, {}, value); }
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// "a\"b" -> "a\\\"b": a label value as the text format wants it.
std::string EscapeLabelValue(std::string_view v);
// A sample value: integers without a fraction, NaN and +Inf spelt as the
// format wants.
std::string FormatValue(double v);

// Durations of finished work, exported as a summary without quantiles
// (_sum, _count) plus the last one as a gauge.
struct DurationSummary {
  double last_s = 0;
  double sum_s = 0;
  uint64_t count = 0;
  void Add(double seconds) {
    last_s = seconds;
    sum_s += seconds;
    ++count;
  }
};

// When each peer, alive, last advertised our root. A peer that has not
// agreed with us since we first saw it counts from that first sight, so the
// age grows for a peer that never agrees.
class AgreementTracker {
 public:
  // Samples the members against our root. Call every second or so, when our
  // root changes (peers that still advertise the previous root agreed with us
  // until now) and before rendering. Peers no longer in `members` are dropped.
  void Observe(int64_t now_ms, const core::Hash256& ours,
               const std::vector<core::MemberView>& members);
  // Wall-clock ms of the peer's last agreement (or first sight); 0 if unknown.
  int64_t LastAgreementMs(const std::string& peer) const;
  const std::map<std::string, int64_t>& last() const { return last_; }

 private:
  std::map<std::string, int64_t> last_;
  core::Hash256 ours_{};
  bool have_ours_ = false;
};

// What the metrics add to the status JSON.
struct MetricsExtras {
  const AgreementTracker* agreement = nullptr;
  DurationSummary scan;                           // full scans
  std::map<std::string, DurationSummary> repair;  // sessions, by result (ok, failed)
};

// The whole exposition. `status` is Agent::StatusJson(); missing fields are
// skipped, so a starting agent renders what it has.
std::string RenderMetrics(const nlohmann::json& status, const MetricsExtras& extras,
                          int64_t now_ms);

}  // namespace gossync::daemon
