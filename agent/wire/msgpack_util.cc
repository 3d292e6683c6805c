#include "agent/wire/msgpack_util.h"

#include <cstring>
#include <new>
#include <vector>

namespace gossync::wire {
namespace {

uint64_t BigEndian(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

// Walks one msgpack value spanning all of `in` without building anything.
// This is what bounds msgpack-c's allocations: every container's declared
// count is checked against the bytes that remain (each element takes at
// least one byte), every str/bin/ext length likewise, the total number of
// values and the nesting depth against the limits. Iterative: a hostile
// nesting depth cannot exhaust the C++ stack.
Status Scan(std::span<const uint8_t> in, const UnpackLimits& lim) {
  const uint8_t* p = in.data();
  const size_t n = in.size();
  size_t pos = 0;
  uint64_t objects = 0;
  // Values still to read in each open container; the bottom entry is the
  // single top-level value.
  std::vector<uint64_t> pending{1};
  auto truncated = [&] {
    return Status::Corruption("msgpack truncated at byte " + std::to_string(n));
  };
  auto need = [&](size_t bytes) { return n - pos >= bytes; };

  while (!pending.empty()) {
    if (pending.back() == 0) {
      pending.pop_back();
      continue;
    }
    --pending.back();
    if (++objects > lim.max_objects) {
      return Status::LimitExceeded("msgpack has more than " + std::to_string(lim.max_objects) +
                                   " values");
    }
    if (!need(1)) return truncated();
    const size_t at = pos;
    const uint8_t b = p[pos++];

    // What the header at `at` announces.
    uint64_t container = 0;  // values in a container (pairs for a map)
    const char* container_kind = nullptr;
    uint64_t data = 0;        // bytes of str/bin/ext data, or of a number
    uint64_t skip_extra = 0;  // the ext type byte
    const char* blob_kind = nullptr;
    size_t blob_limit = 0;

    auto read_len = [&](size_t width, uint64_t* out) {
      if (!need(width)) return false;
      *out = BigEndian(p + pos, width);
      pos += width;
      return true;
    };

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      // fixint, nil, false, true: the byte is the value
    } else if (b <= 0x8f) {  // fixmap
      container_kind = "map", container = b & 0x0f;
    } else if (b <= 0x9f) {  // fixarray
      container_kind = "array", container = b & 0x0f;
    } else if (b <= 0xbf) {  // fixstr
      blob_kind = "str", blob_limit = lim.max_str, data = b & 0x1f;
    } else if (b == 0xc1) {
      return Status::Corruption("msgpack has the never-used byte 0xc1 at byte " +
                                std::to_string(at));
    } else if (b <= 0xc6) {  // bin 8/16/32
      if (!read_len(size_t{1} << (b - 0xc4), &data)) return truncated();
      blob_kind = "bin", blob_limit = lim.max_bin;
    } else if (b <= 0xc9) {  // ext 8/16/32
      if (!read_len(size_t{1} << (b - 0xc7), &data)) return truncated();
      blob_kind = "ext", blob_limit = lim.max_ext, skip_extra = 1;
    } else if (b <= 0xcb) {  // float 32/64
      data = b == 0xca ? 4 : 8;
    } else if (b <= 0xd3) {  // uint 8..64, int 8..64
      data = size_t{1} << ((b - 0xcc) % 4);
    } else if (b <= 0xd8) {  // fixext 1..16
      data = size_t{1} << (b - 0xd4);
      blob_kind = "ext", blob_limit = lim.max_ext, skip_extra = 1;
    } else if (b <= 0xdb) {  // str 8/16/32
      if (!read_len(size_t{1} << (b - 0xd9), &data)) return truncated();
      blob_kind = "str", blob_limit = lim.max_str;
    } else if (b <= 0xdd) {  // array 16/32
      if (!read_len(b == 0xdc ? 2 : 4, &container)) return truncated();
      container_kind = "array";
    } else {  // map 16/32
      if (!read_len(b == 0xde ? 2 : 4, &container)) return truncated();
      container_kind = "map";
    }

    if (container_kind != nullptr) {
      const bool is_map = container_kind[0] == 'm';
      const size_t max = is_map ? lim.max_map : lim.max_array;
      if (container > max) {
        return Status::LimitExceeded("msgpack " + std::string(container_kind) + " of " +
                                     std::to_string(container) + " exceeds the limit of " +
                                     std::to_string(max));
      }
      const uint64_t values = is_map ? 2 * container : container;
      if (values > n - pos) return truncated();  // each value takes at least one byte
      if (pending.size() > lim.max_depth) {
        return Status::LimitExceeded("msgpack nesting deeper than " +
                                     std::to_string(lim.max_depth));
      }
      pending.push_back(values);
      continue;
    }
    if (blob_kind != nullptr && data > blob_limit) {
      return Status::LimitExceeded("msgpack " + std::string(blob_kind) + " of " +
                                   std::to_string(data) + " bytes exceeds the limit of " +
                                   std::to_string(blob_limit));
    }
    if (n - pos < skip_extra || n - pos - skip_extra < data) return truncated();
    pos += skip_extra + data;
  }
  if (pos != n) {
    return Status::Corruption("msgpack has " + std::to_string(n - pos) +
                              " trailing bytes after the value");
  }
  return Status::Ok();
}

}  // namespace

Result<msgpack::object_handle> SafeUnpack(std::span<const uint8_t> bytes,
                                          const UnpackLimits& limits) {
  if (bytes.empty()) return Status::Corruption("msgpack message is empty");
  GOSSYNC_RETURN_IF_ERROR(Scan(bytes, limits));
  // The scan has vetted the structure; msgpack-c's own limits stay on as a
  // second line, and anything it still throws becomes a Status here.
  try {
    std::size_t off = 0;
    bool referenced = false;
    // msgpack-c counts an ext's type byte in its length; UnpackLimits does not.
    const size_t ext = limits.max_ext == SIZE_MAX ? SIZE_MAX : limits.max_ext + 1;
    msgpack::unpack_limit lim(limits.max_array, limits.max_map, limits.max_str, limits.max_bin, ext,
                              limits.max_depth);
    msgpack::object_handle oh =
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), off, referenced,
                        nullptr, nullptr, lim);
    if (off != bytes.size())
      return Status::Corruption("msgpack has trailing bytes after the value");
    return oh;
  } catch (const msgpack::size_overflow& e) {  // also depth_size_overflow
    return Status::LimitExceeded(std::string("msgpack: ") + e.what());
  } catch (const msgpack::unpack_error& e) {
    return Status::Corruption(std::string("msgpack: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Status::LimitExceeded("msgpack: out of memory");
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("msgpack: ") + e.what());
  } catch (...) {
    return Status::Internal("msgpack: unknown exception");
  }
}

const char* TypeName(msgpack::type::object_type type) {
  switch (type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
      return "unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER:
      return "negative integer";
    case msgpack::type::FLOAT32:
      return "float32";
    case msgpack::type::FLOAT64:
      return "float64";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

namespace {

Status WrongType(std::string_view field, const char* want, const msgpack::object& o) {
  return Status::InvalidArgument(std::string(field) + ": expected " + want + ", got " +
                                 TypeName(o.type));
}

}  // namespace

Status ReadUint(const msgpack::object& o, std::string_view field, uint64_t* out, uint64_t max) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) {
    if (o.type == msgpack::type::NEGATIVE_INTEGER) {
      return Status::InvalidArgument(std::string(field) + ": " + std::to_string(o.via.i64) +
                                     " is negative");
    }
    return WrongType(field, "an unsigned integer", o);
  }
  if (o.via.u64 > max) {
    return Status::InvalidArgument(std::string(field) + ": " + std::to_string(o.via.u64) +
                                   " is out of range (max " + std::to_string(max) + ")");
  }
  *out = o.via.u64;
  return Status::Ok();
}

Status ReadInt(const msgpack::object& o, std::string_view field, int64_t* out) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    *out = o.via.i64;
    return Status::Ok();
  }
  if (o.type != msgpack::type::POSITIVE_INTEGER) return WrongType(field, "an integer", o);
  if (o.via.u64 > static_cast<uint64_t>(INT64_MAX)) {
    return Status::InvalidArgument(std::string(field) + ": " + std::to_string(o.via.u64) +
                                   " is out of range for a signed 64-bit integer");
  }
  *out = static_cast<int64_t>(o.via.u64);
  return Status::Ok();
}

Status ReadBool(const msgpack::object& o, std::string_view field, bool* out) {
  if (o.type != msgpack::type::BOOLEAN) return WrongType(field, "a bool", o);
  *out = o.via.boolean;
  return Status::Ok();
}

Status ReadStr(const msgpack::object& o, std::string_view field, std::string* out,
               size_t max_bytes) {
  if (o.type != msgpack::type::STR) return WrongType(field, "a str", o);
  if (o.via.str.size > max_bytes) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(o.via.str.size) +
                                 " bytes, more than " + std::to_string(max_bytes));
  }
  out->assign(o.via.str.ptr, o.via.str.size);
  return Status::Ok();
}

Status ReadBin(const msgpack::object& o, std::string_view field, std::span<const uint8_t>* out,
               size_t max_bytes) {
  if (o.type != msgpack::type::BIN) return WrongType(field, "a bin", o);
  if (o.via.bin.size > max_bytes) {
    return Status::LimitExceeded(std::string(field) + ": " + std::to_string(o.via.bin.size) +
                                 " bytes, more than " + std::to_string(max_bytes));
  }
  *out = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(o.via.bin.ptr), o.via.bin.size);
  return Status::Ok();
}

Status ReadHash(const msgpack::object& o, std::string_view field, core::Hash256* out) {
  if (o.type != msgpack::type::BIN) return WrongType(field, "a bin of 32 bytes", o);
  if (o.via.bin.size != out->size()) {
    return Status::InvalidArgument(std::string(field) + ": a hash is 32 bytes, got " +
                                   std::to_string(o.via.bin.size));
  }
  std::memcpy(out->data(), o.via.bin.ptr, out->size());
  return Status::Ok();
}

Result<ArrayReader> ArrayReader::Open(const msgpack::object& o, std::string_view what,
                                      size_t min_size, size_t max_size) {
  if (o.type != msgpack::type::ARRAY) {
    return Status::InvalidArgument(std::string(what) + ": expected an array, got " +
                                   TypeName(o.type));
  }
  const size_t n = o.via.array.size;
  if (n < min_size || n > max_size) {
    std::string want = min_size == max_size
                           ? std::to_string(min_size)
                           : std::to_string(min_size) + ".." + std::to_string(max_size);
    return Status::InvalidArgument(std::string(what) + ": expected " + want + " elements, got " +
                                   std::to_string(n));
  }
  return ArrayReader(o.via.array.ptr, n, std::string(what));
}

const msgpack::object& ArrayReader::at(size_t i) const {
  GOSSYNC_CHECK(i < size_);
  return items_[i];
}

std::string ArrayReader::Name(std::string_view field) const {
  std::string s = what_;
  s += '.';
  s += field;
  return s;
}

Status ArrayReader::Uint(size_t i, std::string_view field, uint64_t* out, uint64_t max) const {
  return ReadUint(at(i), Name(field), out, max);
}
Status ArrayReader::Int(size_t i, std::string_view field, int64_t* out) const {
  return ReadInt(at(i), Name(field), out);
}
Status ArrayReader::Bool(size_t i, std::string_view field, bool* out) const {
  return ReadBool(at(i), Name(field), out);
}
Status ArrayReader::Str(size_t i, std::string_view field, std::string* out,
                        size_t max_bytes) const {
  return ReadStr(at(i), Name(field), out, max_bytes);
}
Status ArrayReader::Bin(size_t i, std::string_view field, std::span<const uint8_t>* out,
                        size_t max_bytes) const {
  return ReadBin(at(i), Name(field), out, max_bytes);
}
Status ArrayReader::Hash(size_t i, std::string_view field, core::Hash256* out) const {
  return ReadHash(at(i), Name(field), out);
}
Result<ArrayReader> ArrayReader::Array(size_t i, std::string_view field, size_t min_size,
                                       size_t max_size) const {
  return Open(at(i), Name(field), min_size, max_size);
}

}  // namespace gossync::wire
