#include "agent/core/repair_messages.h"

namespace gossync::core {

static_assert(std::variant_size_v<RepairMessage> == kLastMessageType + 2,
              "one alternative per wire type, then UnknownMsg");
static_assert(std::is_same_v<
              std::variant_alternative_t<static_cast<size_t>(RepairMessageType::kAbort), RepairMessage>,
              AbortMsg>);

ShortDigest Truncate(const Hash256& digest) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | digest[i];
  return v;
}

uint64_t PathKey(std::string_view path) { return Truncate(Sha256(path)); }

const char* MessageName(const RepairMessage& m) {
  static constexpr const char* kNames[] = {
      "HELLO",     "NODES", "LEAVES",    "ENTRIES", "WANT",    "BLOCKLIST_REQ", "BLOCKLIST",
      "BLOCK_REQ", "BLOCK", "REQ_ERROR", "FIN",     "FIN_ACK", "ABORT",         "UNKNOWN"};
  return kNames[m.index()];
}

}  // namespace gossync::core
