#include "agent/core/entry.h"

#include "agent/core/path.h"

namespace gossync::core {
namespace {

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

template <typename T>
void PutBigEndian(std::string* out, T v) {
  for (int shift = 8 * (sizeof(T) - 1); shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

}  // namespace

const char* KindName(EntryKind kind) {
  switch (kind) {
    case EntryKind::kFile:
      return "file";
    case EntryKind::kDirectory:
      return "directory";
    case EntryKind::kSymlink:
      return "symlink";
  }
  return "unknown";
}

bool IsValidNodeName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name[0])) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

std::string CanonicalEncoding(const Entry& e) {
  // A valid path is at most 4096 bytes; the u16 length is the format's limit.
  GOSSYNC_CHECK(e.path.size() <= 0xffff);
  GOSSYNC_CHECK(e.vv.pairs().size() <= 0xffffffffu);
  const bool tomb = e.deleted;
  std::string out;
  out.reserve(17 + 2 + e.path.size() + 1 + 4 + 8 + 32 + 4 + 16 * e.vv.pairs().size() + 1 + 16);
  out.append("gossync-entry-v1", 16);
  PutU8(&out, 0);
  PutBigEndian<uint16_t>(&out, static_cast<uint16_t>(e.path.size()));
  out.append(e.path);
  PutU8(&out, static_cast<uint8_t>(e.kind));
  PutBigEndian<uint32_t>(&out, tomb ? 0 : e.mode);
  // A directory's mtime moves whenever a child changes; it must not make the
  // directory look like a new version.
  const int64_t mtime = tomb || e.kind == EntryKind::kDirectory ? 0 : e.mtime_ns;
  PutBigEndian<uint64_t>(&out, static_cast<uint64_t>(mtime));
  if (tomb) {
    out.append(32, '\0');
  } else {
    out.append(reinterpret_cast<const char*>(e.hash.data()), e.hash.size());
  }
  PutBigEndian<uint32_t>(&out, static_cast<uint32_t>(e.vv.pairs().size()));
  for (const VvPair& p : e.vv.pairs()) {
    PutBigEndian<uint64_t>(&out, p.node);
    PutBigEndian<uint64_t>(&out, p.counter);
  }
  PutU8(&out, tomb ? 1 : 0);
  if (e.has_dot()) {
    PutBigEndian<uint64_t>(&out, e.dot.node);
    PutBigEndian<uint64_t>(&out, e.dot.counter);
  }
  return out;
}

Hash256 Entry::Digest() const { return Sha256(CanonicalEncoding(*this)); }

Status ValidateEntry(const Entry& e) {
  GOSSYNC_RETURN_IF_ERROR(ValidatePath(e.path));
  if (static_cast<uint8_t>(e.kind) > static_cast<uint8_t>(EntryKind::kSymlink)) {
    return Status::InvalidArgument("kind " + std::to_string(static_cast<int>(e.kind)) +
                                   " is unknown");
  }
  if ((e.mode & ~kModeMask) != 0) {
    return Status::InvalidArgument("mode has bits outside 07777");
  }
  if (!VersionVector::Valid(e.vv.pairs())) {
    return Status::InvalidArgument("version vector is not sorted, unique and positive");
  }
  if (!IsValidNodeName(e.origin)) {
    return Status::InvalidArgument("origin is not a valid node name");
  }
  if (e.target.size() > kMaxSymlinkTarget) {
    return Status::InvalidArgument("symlink target is " + std::to_string(e.target.size()) +
                                   " bytes, more than " + std::to_string(kMaxSymlinkTarget));
  }
  if (e.target.find('\0') != std::string::npos) {
    return Status::InvalidArgument("symlink target has a NUL byte");
  }
  if (e.has_dot()) {
    if (e.deleted) return Status::InvalidArgument("a tombstone has a dot");
    if (e.vv.Get(e.dot.node) < e.dot.counter) {
      return Status::InvalidArgument("dot is not covered by the version vector");
    }
  } else if (e.dot.node != 0) {
    return Status::InvalidArgument("dot has a node but no counter");
  }
  const bool live_symlink = e.live() && e.kind == EntryKind::kSymlink;
  if (!live_symlink && !e.target.empty()) {
    return Status::InvalidArgument(
        std::string("a ") + (e.deleted ? "tombstone" : KindName(e.kind)) + " has a symlink target");
  }
  if ((e.deleted || e.kind == EntryKind::kDirectory) && !IsZero(e.hash)) {
    return Status::InvalidArgument(std::string("a ") + (e.deleted ? "tombstone" : "directory") +
                                   " has a non-zero content hash");
  }
  if (live_symlink) {
    // symlink(2) refuses an empty target, so such an entry could never be applied.
    if (e.target.empty()) return Status::InvalidArgument("symlink target is empty");
    if (e.hash != Sha256(e.target)) {
      return Status::InvalidArgument("symlink hash is not the SHA-256 of its target");
    }
  }
  return Status::Ok();
}

}  // namespace gossync::core
