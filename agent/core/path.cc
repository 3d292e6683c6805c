#include "agent/core/path.h"

#include <cstdint>

namespace gossync::core {
namespace {

// Returns the offset of the first byte that breaks UTF-8 well-formedness
// (RFC 3629, Table 3-7 of the Unicode standard), or s.size() if none.
size_t FirstInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c == 0xe0) {
      len = 3, lo = 0xa0;  // no overlongs
    } else if (c == 0xed) {
      len = 3, hi = 0x9f;  // no UTF-16 surrogates
    } else if (c >= 0xe1 && c <= 0xef) {
      len = 3;
    } else if (c == 0xf0) {
      len = 4, lo = 0x90;  // no overlongs
    } else if (c >= 0xf1 && c <= 0xf3) {
      len = 4;
    } else if (c == 0xf4) {
      len = 4, hi = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;  // continuation byte, C0/C1 overlong lead, or F5..FF
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    }
    i += len;
  }
  return n;
}

Status CheckComponent(std::string_view c) {
  if (c.empty()) return Status::InvalidArgument("path has an empty component");
  if (c == ".") return Status::InvalidArgument("path has a '.' component");
  if (c == "..") return Status::InvalidArgument("path has a '..' component");
  if (c.size() > kMaxComponentBytes) {
    return Status::InvalidArgument("path component is " + std::to_string(c.size()) +
                                   " bytes, more than " + std::to_string(kMaxComponentBytes));
  }
  return Status::Ok();
}

// The byte-level checks shared by ValidatePath and NormalizePath.
Status CheckBytes(std::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\0') {
      return Status::InvalidArgument("path has a NUL byte at offset " + std::to_string(i));
    }
    if (path[i] == '\\') {
      return Status::InvalidArgument("path has a backslash at offset " + std::to_string(i));
    }
  }
  size_t bad = FirstInvalidUtf8(path);
  if (bad != path.size()) {
    return Status::InvalidArgument("path is not valid UTF-8 at offset " + std::to_string(bad));
  }
  return Status::Ok();
}

}  // namespace

bool IsValidUtf8(std::string_view s) { return FirstInvalidUtf8(s) == s.size(); }

Status ValidatePath(std::string_view path) {
  if (path.empty()) return Status::InvalidArgument("path is empty");
  if (path.size() > kMaxPathBytes) {
    return Status::InvalidArgument("path is " + std::to_string(path.size()) + " bytes, more than " +
                                   std::to_string(kMaxPathBytes));
  }
  if (path.front() == '/') return Status::InvalidArgument("path is absolute");
  if (path.back() == '/') return Status::InvalidArgument("path ends with '/'");
  GOSSYNC_RETURN_IF_ERROR(CheckBytes(path));
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view c = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    GOSSYNC_RETURN_IF_ERROR(CheckComponent(c));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

Result<std::string> NormalizePath(std::string_view path) {
  if (path.empty()) return Status::InvalidArgument("path is empty");
  if (path.front() == '/') return Status::InvalidArgument("path is absolute");
  // Bound the work before looking at the bytes: the result is never longer
  // than the input, but an input of megabytes of "./" is not worth scanning.
  if (path.size() > 2 * kMaxPathBytes) {
    return Status::InvalidArgument("path is " + std::to_string(path.size()) +
                                   " bytes, far more than " + std::to_string(kMaxPathBytes));
  }
  GOSSYNC_RETURN_IF_ERROR(CheckBytes(path));
  std::string out;
  out.reserve(path.size());
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view c = path.substr(start, slash - start);
    start = slash + 1;
    if (c.empty() || c == ".") continue;
    // '..' is rejected rather than resolved: resolving it lexically is wrong
    // when the parent is a symlink, and an operator's path never needs it.
    GOSSYNC_RETURN_IF_ERROR(CheckComponent(c));
    if (!out.empty()) out += '/';
    out += c;
  }
  if (out.empty()) return Status::InvalidArgument("path names the root of the dataset");
  GOSSYNC_RETURN_IF_ERROR(ValidatePath(out));
  return out;
}

std::string_view ParentPath(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool IsUnder(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;
  if (path.size() < dir.size() || path.substr(0, dir.size()) != dir) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

}  // namespace gossync::core
