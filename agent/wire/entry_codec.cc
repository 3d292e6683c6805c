#include "agent/wire/entry_codec.h"

#include "agent/core/path.h"

namespace gossync::wire {

std::vector<uint8_t> EncodeEntry(const core::Entry& e) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  PackEntry(pk, e);
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()),
                              reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
}

Result<core::Entry> EntryFromObject(const msgpack::object& o) {
  auto fields = ArrayReader::Open(o, "entry", kEntryFields, kEntryFields);
  if (!fields.ok()) return fields.status();
  const ArrayReader& f = *fields;
  core::Entry e;
  uint64_t kind = 0, mode = 0;
  // Lengths are bounded before copying; the content is judged by ValidateEntry.
  GOSSYNC_RETURN_IF_ERROR(f.Str(0, "path", &e.path, core::kMaxPathBytes));
  GOSSYNC_RETURN_IF_ERROR(
      f.Uint(1, "kind", &kind, static_cast<uint64_t>(core::EntryKind::kSymlink)));
  GOSSYNC_RETURN_IF_ERROR(f.Uint(2, "mode", &mode, core::kModeMask));
  GOSSYNC_RETURN_IF_ERROR(f.Uint(3, "size", &e.size));
  GOSSYNC_RETURN_IF_ERROR(f.Int(4, "mtime_ns", &e.mtime_ns));
  GOSSYNC_RETURN_IF_ERROR(f.Hash(5, "hash", &e.hash));
  GOSSYNC_RETURN_IF_ERROR(f.Str(6, "target", &e.target, core::kMaxSymlinkTarget));
  auto vv = f.Array(7, "vv", 0, kMaxVvPairs);
  if (!vv.ok()) return vv.status();
  std::vector<core::VvPair> pairs(vv->size());
  for (size_t i = 0; i < vv->size(); ++i) {
    auto pair = vv->Array(i, "[" + std::to_string(i) + "]", 2, 2);
    if (!pair.ok()) return pair.status();
    GOSSYNC_RETURN_IF_ERROR(pair->Uint(0, "node", &pairs[i].node));
    GOSSYNC_RETURN_IF_ERROR(pair->Uint(1, "counter", &pairs[i].counter));
  }
  // The VersionVector constructor CHECKs its invariants; a peer's vector is
  // checked here first so that bad input is an error, not an abort.
  if (!core::VersionVector::Valid(pairs)) {
    return Status::InvalidArgument(
        "entry.vv: pairs must be sorted by node, unique, with counters > 0");
  }
  e.vv = core::VersionVector(std::move(pairs));
  GOSSYNC_RETURN_IF_ERROR(f.Uint(8, "hlc", &e.hlc));
  GOSSYNC_RETURN_IF_ERROR(f.Str(9, "origin", &e.origin, 63));
  GOSSYNC_RETURN_IF_ERROR(f.Bool(10, "deleted", &e.deleted));
  auto dot = f.Array(11, "dot", 2, 2);
  if (!dot.ok()) return dot.status();
  GOSSYNC_RETURN_IF_ERROR(dot->Uint(0, "node", &e.dot.node));
  GOSSYNC_RETURN_IF_ERROR(dot->Uint(1, "counter", &e.dot.counter));
  e.kind = static_cast<core::EntryKind>(kind);
  e.mode = static_cast<uint32_t>(mode);
  Status valid = core::ValidateEntry(e);
  if (!valid.ok()) return valid.Prefixed("entry");
  return e;
}

Result<core::Entry> DecodeEntry(std::span<const uint8_t> bytes, const UnpackLimits& limits) {
  auto oh = SafeUnpack(bytes, limits);
  if (!oh.ok()) return oh.status();
  return EntryFromObject(oh->get());
}

int FuzzDecodeEntry(const uint8_t* data, size_t size) {
  auto first = DecodeEntry(std::span<const uint8_t>(data, size));
  if (!first.ok()) return 0;
  std::vector<uint8_t> again = EncodeEntry(*first);
  auto second = DecodeEntry(again);
  GOSSYNC_CHECK(second.ok());
  GOSSYNC_CHECK(*second == *first);
  GOSSYNC_CHECK(EncodeEntry(*second) == again);  // our own encoding is canonical
  return 0;
}

}  // namespace gossync::wire
