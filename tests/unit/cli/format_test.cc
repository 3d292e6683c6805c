#include <catch2/catch.hpp>

#include "agent/cli/format.h"

namespace gossync::cli {
namespace {

TEST_CASE("Table: columns are aligned to the widest cell", "[cli]") {
  std::string t = Table({"NAME", "STATE"}, {{"alpha", "alive"}, {"b", "suspect"}, {"gamma"}});
  CHECK(t ==
        "NAME   STATE\n"
        "alpha  alive\n"
        "b      suspect\n"
        "gamma\n");
}

TEST_CASE("HumanBytes and Ago read naturally", "[cli]") {
  CHECK(HumanBytes(12) == "12 B");
  CHECK(HumanBytes(1536) == "1.5 KiB");
  CHECK(HumanBytes(3.0 * (1 << 30)) == "3.0 GiB");
  CHECK(Ago(0, 5000) == "never");
  CHECK(Ago(1000, 4000) == "3s ago");
  CHECK(Ago(1000, 1000 + 125000) == "2m ago");
  CHECK(Ago(1, 1 + 5 * 3600 * 1000) == "5h ago");
  CHECK(ShortRoot("") == "-");
  CHECK(ShortRoot("0123456789abcdef") == "0123456789ab");
}

TEST_CASE("FormatStatus shows node, root, entries and members", "[cli]") {
  nlohmann::json s = {
      {"node", "alpha"}, {"node_id", "00ff"}, {"root", "abcdef0123456789"}, {"entries", 3},
      {"files", 2}, {"directories", 1}, {"symlinks", 0}, {"tombstones", 4},
      {"scan", {{"state", "idle"}, {"last_full_scan_ms", 1000}, {"last_scan_duration_ms", 1500}}},
      {"members",
       {{{"name", "beta"}, {"address", "127.0.0.1:7001"}, {"state", "alive"},
         {"root", "abcdef0123456789"}, {"last_heard_ms", 9000}}}},
  };
  std::string out = FormatStatus(s, 10000);
  CHECK(out.find("alpha (id 00ff)") != std::string::npos);
  CHECK(out.find("3 (2 files, 1 directories, 0 symlinks; 4 tombstones)") != std::string::npos);
  CHECK(out.find("idle, last full scan 9s ago in 1.5s") != std::string::npos);
  CHECK(out.find("beta") != std::string::npos);
  CHECK(out.find("1s ago") != std::string::npos);
}

TEST_CASE("FormatStatus tolerates missing fields", "[cli]") {
  CHECK_NOTHROW(FormatStatus(nlohmann::json::object(), 0));
  CHECK_NOTHROW(FormatPeers(nlohmann::json::array(), 0));
  CHECK(FormatConflicts(nlohmann::json::array()) == "no conflict copies\n");
}

}  // namespace
}  // namespace gossync::cli
