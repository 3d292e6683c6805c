// The scanner (DESIGN.md section 5): a full walk of data_dir, single-path
// checks for the watcher, and content hashing.
//
// Thread: all of these block on disk and run on libuv's work pool, never on
// the loop thread. They are reentrant: any number may run at once on
// different threads over the same RootDir and IgnoreMatcher.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/hash.h"
#include "agent/store/fs.h"
#include "agent/store/ignore.h"
#include "agent/store/local_stat.h"
#include "gossync/status.h"

namespace gossync::store {

struct WalkOptions {
  // Descend into directories on another file system than the root (mount
  // points). Off by default: the mount point itself is recorded, not entered.
  bool cross_devices = false;
  // Stop with LimitExceeded past this many entries (a bound on memory).
  size_t max_entries = 50'000'000;
  // How many skipped names the result lists verbatim for the log.
  size_t max_listed_skips = 100;
  // Fault injection for tests: called with a directory's path ("" for the
  // root) just before the walk opens it, to change the tree mid-walk.
  std::function<void(std::string_view dir)> before_open_dir;
};

// A directory whose contents the walk could not read. The caller must not
// take the absence of entries beneath `path` as deletions.
struct WalkError {
  std::string path;  // "" is the root
  Status status;
};

struct WalkResult {
  // Every file, directory and symlink not ignored, sorted by path (bytewise).
  // Files have a zero hash (hashing is separate); a symlink's hash is
  // SHA-256 of its target; a directory's is zero.
  std::vector<Observation> entries;
  std::vector<WalkError> errors;

  uint64_t ignored = 0;       // entries matched by the ignore patterns (not descended)
  uint64_t special = 0;       // sockets, FIFOs, devices: never synced
  uint64_t bad_names = 0;     // not UTF-8, too long, or otherwise not a valid path
  uint64_t other_device = 0;  // mount points not entered
  uint64_t vanished = 0;      // listed by readdir, gone before lstat
  // Up to WalkOptions::max_listed_skips of the special and bad names, with
  // bytes that are not printable ASCII written as \xNN, for the log.
  std::vector<std::string> skipped_examples;
};

// Walks the whole tree under `root`: fd-relative, never following a symlink
// (symlinks are recorded with their target), skipping what `ignore` excludes
// without descending into ignored directories. An unreadable or vanished
// directory goes to `errors`, never fails the walk. Fails only if the root
// itself cannot be read or a limit is exceeded.
Result<WalkResult> Walk(const RootDir& root, const IgnoreMatcher& ignore,
                        const WalkOptions& options = {});

// The current lstat of one path, for the watcher. nullopt if nothing is there
// (also when a parent is missing, not a directory, or a symlink: then `path`
// is not an entry of the tree) or if it is a socket, FIFO or device.
// `path` must be canonical.
Result<std::optional<LocalStat>> LstatOne(const RootDir& root, std::string_view path);

// LocalStat from a struct stat (kind, mode, size, mtime, ctime, ino, dev);
// nullopt for a special file. Does not read a symlink's target.
std::optional<LocalStat> ToLocalStat(const struct stat& st);

enum class ReadMethod : uint8_t {
  kPread,  // pread(2) into a reused buffer
  kMmap,   // mmap(2) the file in windows of the buffer size
};

struct HashOptions {
  size_t buffer_bytes = 1 << 20;           // read size; a multiple of block_size is best
  ReadMethod method = ReadMethod::kPread;  // the faster on the bench (see bench_scan)
  // Fault injection for tests: called after each chunk has been read and
  // hashed, with the offset reached, to change the file mid-hash.
  std::function<void(uint64_t offset)> after_chunk;
};

struct FileHashes {
  core::Hash256 file{};               // SHA-256 of the whole content
  std::vector<core::Hash256> blocks;  // SHA-256 of each block_size block (last one short)
};

inline constexpr size_t kDefaultBlockSize = 128 * 1024;
inline constexpr size_t kMaxBlockSize = 64 * 1024 * 1024;

// SHA-256 of a regular file's content. `expected` is what the caller saw
// (from Walk or LstatOne): if the file's (size, mtime, inode) differ from it
// before reading, or its (size, mtime, ctime, inode) change while reading, or
// fewer or more bytes than its size come back, the result is Aborted: retry
// later. A file that changes while hashed is never reported with a hash.
Result<core::Hash256> HashFile(const RootDir& root, std::string_view path,
                               const LocalStat& expected, const HashOptions& options = {});

// HashFile plus the per-block hashes the repair protocol uses, in the same
// single read pass. REQUIRES: 0 < block_size <= kMaxBlockSize (else
// InvalidArgument).
Result<FileHashes> HashFileBlocks(const RootDir& root, std::string_view path,
                                  const LocalStat& expected, size_t block_size = kDefaultBlockSize,
                                  const HashOptions& options = {});

// The same two hashes over an already-open fd (regular file), reading
// [0, size) with pread. Used by the atomic writer to verify a temp file.
// Fails with Corruption if fewer than `size` bytes can be read.
Result<FileHashes> HashFd(int fd, uint64_t size, size_t block_size,
                          const HashOptions& options = {});

}  // namespace gossync::store
