// Human output of the CLI: pure functions from the agent's JSON answers to
// text, unit-tested without an agent.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gossync::cli {

// Left-aligned columns separated by two spaces, a header row first.
// Rows shorter than the header are padded with empty cells.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

// "1.5 KiB", "12 B", "3.2 GiB".
std::string HumanBytes(double bytes);
// "3s ago", "2m ago", "5h ago", "never" (ms <= 0), relative to now_ms.
std::string Ago(int64_t then_ms, int64_t now_ms);
// The first 12 hex digits of a root, or "-" when empty.
std::string ShortRoot(const std::string& hex);

std::string FormatStatus(const nlohmann::json& status, int64_t now_ms);
std::string FormatPeers(const nlohmann::json& peers, int64_t now_ms);
std::string FormatConflicts(const nlohmann::json& conflicts);
std::string FormatDiff(const nlohmann::json& diff);
std::string FormatSync(const nlohmann::json& sync);

}  // namespace gossync::cli
