// Entry paths (DESIGN.md section 1): relative, UTF-8, '/'-separated, no empty,
// '.' or '..' component, no NUL, no leading '/', at most 4096 bytes in all and
// 255 bytes per component. These are the only paths gossync ever writes.
//
// A backslash is rejected too, although Linux allows it in a name: a Windows
// peer (or a tool on one) would read it as a separator, so "a\..\x" could
// escape the tree there, and "a\b" and "a/b" would collide.
#pragma once

#include <string>
#include <string_view>

#include "gossync/status.h"

namespace gossync::core {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxComponentBytes = 255;

// Strict check of a path as it arrives from a peer or the index: OK only if
// `path` is already canonical. The message names what is wrong.
Status ValidatePath(std::string_view path);

// Lenient normalization of an operator's or the scanner's relative path:
// drops '.' components, repeated and trailing slashes; rejects '..',
// absolute paths and everything ValidatePath rejects. "a/./b//" -> "a/b".
Result<std::string> NormalizePath(std::string_view path);

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// "a/b/c" -> "a/b"; "c" -> "".
std::string_view ParentPath(std::string_view path);
// "a/b/c" -> "c".
std::string_view BaseName(std::string_view path);
// True if `path` equals `dir` or lies below it ("a/b" is under "a", "ab" is not).
// Everything is under the empty dir (the root of the dataset).
bool IsUnder(std::string_view path, std::string_view dir);

}  // namespace gossync::core
