#include "agent/wire/repair_codec.h"

#include <cstring>
#include <msgpack.hpp>
#include <string>

#include "agent/core/path.h"
#include "agent/wire/entry_codec.h"
#include "agent/wire/frame.h"
#include "agent/wire/msgpack_util.h"

namespace gossync::wire {
namespace {

using namespace core;  // the message structs

constexpr size_t kMaxNameBytes = 63;  // IsValidNodeName's bound

// The element counts of each known message, type included.
constexpr size_t kFields[] = {8, 3, 2, 2, 2, 4, 7, 5, 4, 4, 1, 1, 2};
static_assert(sizeof(kFields) / sizeof(kFields[0]) == kLastMessageType + 1);

void Put64(uint64_t v, uint8_t* p) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

// ---- Encoding ----

template <typename Stream>
class Encoder {
 public:
  explicit Encoder(Stream& s) : pk_(s) {}

  void Header(RepairMessageType t) {
    pk_.pack_array(static_cast<uint32_t>(kFields[static_cast<size_t>(t)]));
    pk_.pack(static_cast<uint8_t>(t));
  }
  void Bin(const void* data, size_t n) {
    pk_.pack_bin(static_cast<uint32_t>(n));
    pk_.pack_bin_body(static_cast<const char*>(data), static_cast<uint32_t>(n));
  }
  void Bin(const Hash256& h) { Bin(h.data(), h.size()); }

  void operator()(const HelloMsg& m) {
    Header(RepairMessageType::kHello);
    pk_.pack(m.version);
    pk_.pack(m.name);
    pk_.pack(m.depth);
    Bin(m.root);
    pk_.pack(m.entries);
    pk_.pack(m.hlc);
    pk_.pack(m.flags);
  }
  void operator()(const NodesMsg& m) {
    Header(RepairMessageType::kNodes);
    pk_.pack(m.level);
    pk_.pack_array(static_cast<uint32_t>(m.items.size()));
    for (const NodeItem& it : m.items) {
      pk_.pack_array(2);
      pk_.pack(it.prefix);
      uint8_t buf[16 * 8];
      for (int i = 0; i < 16; ++i) Put64(it.digests[i], buf + 8 * i);
      Bin(buf, sizeof(buf));
    }
  }
  void operator()(const LeavesMsg& m) {
    Header(RepairMessageType::kLeaves);
    pk_.pack_array(static_cast<uint32_t>(m.items.size()));
    std::vector<uint8_t> buf;
    for (const LeafItem& it : m.items) {
      pk_.pack_array(2);
      pk_.pack(it.bucket);
      buf.resize(it.keys.size() * 16);
      for (size_t i = 0; i < it.keys.size(); ++i) {
        Put64(it.keys[i].key, buf.data() + 16 * i);
        Put64(it.keys[i].digest, buf.data() + 16 * i + 8);
      }
      Bin(buf.data(), buf.size());
    }
  }
  void operator()(const EntriesMsg& m) {
    Header(RepairMessageType::kEntries);
    pk_.pack_array(static_cast<uint32_t>(m.entries.size()));
    for (const Entry& e : m.entries) PackEntry(pk_, e);
  }
  void operator()(const WantMsg& m) {
    Header(RepairMessageType::kWant);
    std::vector<uint8_t> buf(m.keys.size() * 8);
    for (size_t i = 0; i < m.keys.size(); ++i) Put64(m.keys[i], buf.data() + 8 * i);
    Bin(buf.data(), buf.size());
  }
  void operator()(const BlockListReqMsg& m) {
    Header(RepairMessageType::kBlockListReq);
    pk_.pack(m.req);
    pk_.pack(m.path);
    Bin(m.hash);
  }
  void operator()(const BlockListMsg& m) {
    Header(RepairMessageType::kBlockList);
    pk_.pack(m.req);
    pk_.pack(m.size);
    pk_.pack(m.block_size);
    pk_.pack(m.first);
    pk_.pack_bin(static_cast<uint32_t>(m.hashes.size() * 32));
    for (const Hash256& h : m.hashes) {
      pk_.pack_bin_body(reinterpret_cast<const char*>(h.data()), 32);
    }
    pk_.pack(m.last);
  }
  void operator()(const BlockReqMsg& m) {
    Header(RepairMessageType::kBlockReq);
    pk_.pack(m.req);
    pk_.pack(m.path);
    Bin(m.hash);
    pk_.pack_array(static_cast<uint32_t>(m.indexes.size()));
    for (uint32_t i : m.indexes) pk_.pack(i);
  }
  void operator()(const BlockMsg& m) {
    Header(RepairMessageType::kBlock);
    pk_.pack(m.req);
    pk_.pack(m.index);
    Bin(m.data.data(), m.data.size());
  }
  void operator()(const ReqErrorMsg& m) {
    Header(RepairMessageType::kReqError);
    pk_.pack(m.req);
    pk_.pack(m.code);
    pk_.pack(m.message);
  }
  void operator()(const FinMsg&) { Header(RepairMessageType::kFin); }
  void operator()(const FinAckMsg&) { Header(RepairMessageType::kFinAck); }
  void operator()(const AbortMsg& m) {
    Header(RepairMessageType::kAbort);
    pk_.pack(m.reason);
  }
  void operator()(const UnknownMsg& m) {
    pk_.pack_array(1);
    pk_.pack(m.type);
  }

 private:
  msgpack::packer<Stream> pk_;
};

// ---- Decoding ----

// A list of at most `max` elements; too many is LimitExceeded.
Result<ArrayReader> OpenList(const ArrayReader& parent, size_t i, const std::string& what,
                             size_t max) {
  const msgpack::object& o = parent.at(i);
  if (o.type == msgpack::type::ARRAY && o.via.array.size > max) {
    return Status::LimitExceeded(what + ": " + std::to_string(o.via.array.size) +
                                 " elements exceed the limit of " + std::to_string(max));
  }
  return parent.Array(i, what.substr(what.rfind('.') + 1), 0, max);
}

// A bin holding `unit`-byte records, at most `max` of them.
Status ReadRecords(const ArrayReader& r, size_t i, std::string_view field, size_t unit, size_t max,
                   std::span<const uint8_t>* out) {
  GOSSYNC_RETURN_IF_ERROR(ReadBin(r.at(i), field, out, SIZE_MAX));
  if (out->size() % unit != 0) {
    return Status::InvalidArgument(std::string(field) + ": " + std::to_string(out->size()) +
                                   " bytes is not a multiple of " + std::to_string(unit));
  }
  if (out->size() / unit > max) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(out->size() / unit) +
                                 " records exceed the limit of " + std::to_string(max));
  }
  return Status::Ok();
}

Status ReadU32(const ArrayReader& r, size_t i, std::string_view field, uint32_t* out) {
  uint64_t v = 0;
  GOSSYNC_RETURN_IF_ERROR(r.Uint(i, field, &v, UINT32_MAX));
  *out = static_cast<uint32_t>(v);
  return Status::Ok();
}

Result<RepairMessage> DecodeHello(const ArrayReader& r) {
  HelloMsg m;
  uint64_t version = 0, depth = 0, flags = 0;
  GOSSYNC_RETURN_IF_ERROR(r.Uint(1, "version", &version, UINT16_MAX));
  GOSSYNC_RETURN_IF_ERROR(r.Str(2, "name", &m.name, kMaxNameBytes));
  GOSSYNC_RETURN_IF_ERROR(r.Uint(3, "depth", &depth, UINT8_MAX));
  GOSSYNC_RETURN_IF_ERROR(r.Hash(4, "root", &m.root));
  GOSSYNC_RETURN_IF_ERROR(r.Uint(5, "entries", &m.entries));
  GOSSYNC_RETURN_IF_ERROR(r.Uint(6, "hlc", &m.hlc));
  GOSSYNC_RETURN_IF_ERROR(r.Uint(7, "flags", &flags, UINT32_MAX));
  m.version = static_cast<uint16_t>(version);
  m.depth = static_cast<uint8_t>(depth);
  m.flags = static_cast<uint32_t>(flags);
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeNodes(const ArrayReader& r) {
  NodesMsg m;
  uint64_t level = 0;
  GOSSYNC_RETURN_IF_ERROR(r.Uint(1, "level", &level, UINT8_MAX));
  m.level = static_cast<uint8_t>(level);
  auto items = OpenList(r, 2, "NODES.items", kMaxNodesItems);
  if (!items.ok()) return items.status();
  m.items.resize(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    auto item = items->Array(i, "[" + std::to_string(i) + "]", 2, 2);
    if (!item.ok()) return item.status();
    GOSSYNC_RETURN_IF_ERROR(ReadU32(*item, 0, "prefix", &m.items[i].prefix));
    std::span<const uint8_t> digests;
    GOSSYNC_RETURN_IF_ERROR(item->Bin(1, "digests", &digests, 16 * 8));
    if (digests.size() != 16 * 8) {
      return Status::InvalidArgument("NODES.items[" + std::to_string(i) +
                                     "].digests: expected 128 bytes, got " +
                                     std::to_string(digests.size()));
    }
    for (int d = 0; d < 16; ++d) m.items[i].digests[d] = Get64(digests.data() + 8 * d);
  }
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeLeaves(const ArrayReader& r) {
  LeavesMsg m;
  auto items = OpenList(r, 1, "LEAVES.items", kMaxLeavesItems);
  if (!items.ok()) return items.status();
  m.items.resize(items->size());
  size_t pairs = 0;
  for (size_t i = 0; i < items->size(); ++i) {
    const std::string name = "[" + std::to_string(i) + "]";
    auto item = items->Array(i, name, 2, 2);
    if (!item.ok()) return item.status();
    GOSSYNC_RETURN_IF_ERROR(ReadU32(*item, 0, "bucket", &m.items[i].bucket));
    std::span<const uint8_t> bytes;
    GOSSYNC_RETURN_IF_ERROR(
        ReadRecords(*item, 1, "LEAVES.items" + name + ".keys", 16, kMaxLeafPairs, &bytes));
    pairs += bytes.size() / 16;
    if (pairs > kMaxLeafPairs) {
      return Status::LimitExceeded("LEAVES: more than " + std::to_string(kMaxLeafPairs) +
                                   " key pairs");
    }
    auto& keys = m.items[i].keys;
    keys.resize(bytes.size() / 16);
    for (size_t k = 0; k < keys.size(); ++k) {
      keys[k].key = Get64(bytes.data() + 16 * k);
      keys[k].digest = Get64(bytes.data() + 16 * k + 8);
    }
  }
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeEntries(const ArrayReader& r) {
  EntriesMsg m;
  auto items = OpenList(r, 1, "ENTRIES.entries", kMaxEntriesItems);
  if (!items.ok()) return items.status();
  m.entries.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    auto e = EntryFromObject(items->at(i));
    if (!e.ok()) return e.status().Prefixed("ENTRIES.entries[" + std::to_string(i) + "]");
    m.entries.push_back(std::move(e).value());
  }
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeWant(const ArrayReader& r) {
  WantMsg m;
  std::span<const uint8_t> bytes;
  GOSSYNC_RETURN_IF_ERROR(ReadRecords(r, 1, "WANT.keys", 8, kMaxWantKeys, &bytes));
  m.keys.resize(bytes.size() / 8);
  for (size_t k = 0; k < m.keys.size(); ++k) m.keys[k] = Get64(bytes.data() + 8 * k);
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeBlockListReq(const ArrayReader& r) {
  BlockListReqMsg m;
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 1, "req", &m.req));
  GOSSYNC_RETURN_IF_ERROR(r.Str(2, "path", &m.path, kMaxPathBytes));
  GOSSYNC_RETURN_IF_ERROR(r.Hash(3, "hash", &m.hash));
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeBlockList(const ArrayReader& r) {
  BlockListMsg m;
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 1, "req", &m.req));
  GOSSYNC_RETURN_IF_ERROR(r.Uint(2, "size", &m.size));
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 3, "block_size", &m.block_size));
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 4, "first", &m.first));
  std::span<const uint8_t> bytes;
  GOSSYNC_RETURN_IF_ERROR(ReadRecords(r, 5, "BLOCKLIST.hashes", 32, kMaxBlockListHashes, &bytes));
  m.hashes.resize(bytes.size() / 32);
  for (size_t k = 0; k < m.hashes.size(); ++k) {
    std::memcpy(m.hashes[k].data(), bytes.data() + 32 * k, 32);
  }
  GOSSYNC_RETURN_IF_ERROR(r.Bool(6, "last", &m.last));
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeBlockReq(const ArrayReader& r) {
  BlockReqMsg m;
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 1, "req", &m.req));
  GOSSYNC_RETURN_IF_ERROR(r.Str(2, "path", &m.path, kMaxPathBytes));
  GOSSYNC_RETURN_IF_ERROR(r.Hash(3, "hash", &m.hash));
  auto idx = OpenList(r, 4, "BLOCK_REQ.indexes", kMaxBlockReqIndexes);
  if (!idx.ok()) return idx.status();
  m.indexes.resize(idx->size());
  for (size_t i = 0; i < idx->size(); ++i) {
    GOSSYNC_RETURN_IF_ERROR(ReadU32(*idx, i, "[" + std::to_string(i) + "]", &m.indexes[i]));
  }
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeBlock(const ArrayReader& r, size_t max_frame_bytes) {
  BlockMsg m;
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 1, "req", &m.req));
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 2, "index", &m.index));
  std::span<const uint8_t> data;
  GOSSYNC_RETURN_IF_ERROR(r.Bin(3, "data", &data, max_frame_bytes));
  m.data.assign(data.begin(), data.end());
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeReqError(const ArrayReader& r) {
  ReqErrorMsg m;
  uint64_t code = 0;
  GOSSYNC_RETURN_IF_ERROR(ReadU32(r, 1, "req", &m.req));
  GOSSYNC_RETURN_IF_ERROR(r.Uint(2, "code", &code, UINT8_MAX));
  GOSSYNC_RETURN_IF_ERROR(r.Str(3, "message", &m.message, kMaxReasonBytes));
  m.code = static_cast<uint8_t>(code);
  return RepairMessage(std::move(m));
}

Result<RepairMessage> DecodeAbort(const ArrayReader& r) {
  AbortMsg m;
  GOSSYNC_RETURN_IF_ERROR(r.Str(1, "reason", &m.reason, kMaxReasonBytes));
  return RepairMessage(std::move(m));
}

const char* const kNames[] = {"HELLO",         "NODES",     "LEAVES",    "ENTRIES", "WANT",
                              "BLOCKLIST_REQ", "BLOCKLIST", "BLOCK_REQ", "BLOCK",   "REQ_ERROR",
                              "FIN",           "FIN_ACK",   "ABORT"};

}  // namespace

std::vector<uint8_t> EncodeMessage(const RepairMessage& m) {
  msgpack::sbuffer buf;
  Encoder<msgpack::sbuffer> enc(buf);
  std::visit(enc, m);
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()),
                              reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
}

std::vector<uint8_t> EncodeMessageFrame(const RepairMessage& m) {
  msgpack::sbuffer buf;
  const char header[kFrameHeaderBytes] = {};
  buf.write(header, sizeof(header));  // patched below, once the size is known
  Encoder<msgpack::sbuffer> enc(buf);
  std::visit(enc, m);
  const size_t n = buf.size() - kFrameHeaderBytes;
  GOSSYNC_CHECK(n <= UINT32_MAX);
  auto* p = reinterpret_cast<uint8_t*>(buf.data());
  p[0] = static_cast<uint8_t>(n >> 24);
  p[1] = static_cast<uint8_t>(n >> 16);
  p[2] = static_cast<uint8_t>(n >> 8);
  p[3] = static_cast<uint8_t>(n);
  return std::vector<uint8_t>(p, p + buf.size());
}

Result<RepairMessage> DecodeMessage(std::span<const uint8_t> body, size_t max_frame_bytes) {
  UnpackLimits limits;
  limits.max_array = kMaxNodesItems;  // the largest list: NODES, LEAVES (4096)
  limits.max_map = 0;                 // the protocol has no maps
  limits.max_str = kMaxPathBytes;     // paths; names, targets and reasons are shorter
  limits.max_bin = max_frame_bytes;   // a content block
  limits.max_ext = 0;
  limits.max_depth = 8;
  auto oh = SafeUnpack(body, limits);
  if (!oh.ok()) return oh.status();
  const msgpack::object& o = oh->get();
  auto top = ArrayReader::Open(o, "message", 1, SIZE_MAX);
  if (!top.ok()) return top.status();
  uint64_t type = 0;
  GOSSYNC_RETURN_IF_ERROR(top->Uint(0, "type", &type));
  if (type > kLastMessageType) return RepairMessage(UnknownMsg{type});
  auto r = ArrayReader::Open(o, kNames[type], kFields[type], kFields[type]);
  if (!r.ok()) return r.status();
  switch (static_cast<RepairMessageType>(type)) {
    case RepairMessageType::kHello:
      return DecodeHello(*r);
    case RepairMessageType::kNodes:
      return DecodeNodes(*r);
    case RepairMessageType::kLeaves:
      return DecodeLeaves(*r);
    case RepairMessageType::kEntries:
      return DecodeEntries(*r);
    case RepairMessageType::kWant:
      return DecodeWant(*r);
    case RepairMessageType::kBlockListReq:
      return DecodeBlockListReq(*r);
    case RepairMessageType::kBlockList:
      return DecodeBlockList(*r);
    case RepairMessageType::kBlockReq:
      return DecodeBlockReq(*r);
    case RepairMessageType::kBlock:
      return DecodeBlock(*r, max_frame_bytes);
    case RepairMessageType::kReqError:
      return DecodeReqError(*r);
    case RepairMessageType::kFin:
      return RepairMessage(FinMsg{});
    case RepairMessageType::kFinAck:
      return RepairMessage(FinAckMsg{});
    case RepairMessageType::kAbort:
      return DecodeAbort(*r);
  }
  return Status::Internal("unreachable message type");
}

const char* DecodeErrorCounter(const Status& s) {
  return s.code() == Code::kLimitExceeded ? "limit_exceeded" : "malformed";
}

int FuzzDecodeMessage(const uint8_t* data, size_t size) {
  auto first = DecodeMessage(std::span<const uint8_t>(data, size));
  if (!first.ok()) return 0;
  std::vector<uint8_t> again = EncodeMessage(*first);
  auto second = DecodeMessage(again);
  GOSSYNC_CHECK(second.ok());
  GOSSYNC_CHECK(*second == *first);
  return 0;
}

}  // namespace gossync::wire
