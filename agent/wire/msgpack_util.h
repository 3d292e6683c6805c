// Decoding untrusted msgpack (STYLE.md habits 2 and 3): the one place that
// calls msgpack-c's unpacker, with explicit limits, and turns every exception
// into a Status. Plus typed, non-throwing reads of positional fields.
//
// SafeUnpack first walks the bytes without allocating (a structural scan) and
// rejects anything truncated, over a limit, nested too deep, or followed by
// trailing bytes. Only then does msgpack-c build objects, so the memory it
// takes is bounded by the input's size: a 5-byte "array of 4G elements"
// is refused before a single element is allocated.
//
// Thread-safe: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <msgpack.hpp>
#include <span>
#include <string>
#include <string_view>

#include "agent/core/hash.h"
#include "gossync/status.h"

namespace gossync::wire {

struct UnpackLimits {
  size_t max_array = 65536;    // elements in one array
  size_t max_map = 1024;       // key/value pairs in one map
  size_t max_str = 64 * 1024;  // bytes in one str (a path is at most 4 KiB)
  size_t max_bin = 4 << 20;    // bytes in one bin (a content block is 128 KiB)
  size_t max_ext = 0;          // bytes of ext data (not counting the type byte); gossync sends none
  size_t max_depth = 16;       // nesting of arrays and maps (the root container is 1)
  size_t max_objects = 1 << 20;  // values in the whole message; each costs msgpack-c 24 bytes
};

// Decodes exactly one msgpack value that spans all of `bytes`.
// Errors: kCorruption (malformed, truncated, trailing bytes),
// kLimitExceeded (a bound of `limits`). The handle owns copies of all
// strings and bins; `bytes` need not outlive it.
Result<msgpack::object_handle> SafeUnpack(std::span<const uint8_t> bytes,
                                          const UnpackLimits& limits = {});

// The msgpack type name, for error messages: "array", "str", ...
const char* TypeName(msgpack::type::object_type type);

// Typed reads of one value. `field` names it in errors, e.g.
// "entry.mode: expected an unsigned integer, got str". None throws.
Status ReadUint(const msgpack::object& o, std::string_view field, uint64_t* out,
                uint64_t max = UINT64_MAX);
Status ReadInt(const msgpack::object& o, std::string_view field, int64_t* out);
Status ReadBool(const msgpack::object& o, std::string_view field, bool* out);
// A str of at most `max_bytes` (any bytes; validate the content separately).
Status ReadStr(const msgpack::object& o, std::string_view field, std::string* out,
               size_t max_bytes);
// A bin of at most `max_bytes`. The view points into the object's zone.
Status ReadBin(const msgpack::object& o, std::string_view field, std::span<const uint8_t>* out,
               size_t max_bytes);
// A bin of exactly 32 bytes.
Status ReadHash(const msgpack::object& o, std::string_view field, core::Hash256* out);

// A msgpack array read by position, each read naming "<what>.<field>".
// Holds a pointer into the object: valid while the object_handle lives.
class ArrayReader {
 public:
  // Fails unless `o` is an array of min_size..max_size elements.
  static Result<ArrayReader> Open(const msgpack::object& o, std::string_view what, size_t min_size,
                                  size_t max_size);

  size_t size() const { return size_; }
  // REQUIRES: i < size().
  const msgpack::object& at(size_t i) const;

  Status Uint(size_t i, std::string_view field, uint64_t* out, uint64_t max = UINT64_MAX) const;
  Status Int(size_t i, std::string_view field, int64_t* out) const;
  Status Bool(size_t i, std::string_view field, bool* out) const;
  Status Str(size_t i, std::string_view field, std::string* out, size_t max_bytes) const;
  Status Bin(size_t i, std::string_view field, std::span<const uint8_t>* out,
             size_t max_bytes) const;
  Status Hash(size_t i, std::string_view field, core::Hash256* out) const;
  // The element as a nested array of min_size..max_size elements.
  Result<ArrayReader> Array(size_t i, std::string_view field, size_t min_size,
                            size_t max_size) const;

 private:
  ArrayReader(const msgpack::object* items, size_t size, std::string what)
      : items_(items), size_(size), what_(std::move(what)) {}
  std::string Name(std::string_view field) const;

  const msgpack::object* items_;
  size_t size_;
  std::string what_;
};

}  // namespace gossync::wire
