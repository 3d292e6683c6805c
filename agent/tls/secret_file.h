// Writing the module's small files (keys, certificates, keyrings) atomically.
// Thread-compatible; touches only the paths it is given.
#pragma once

#include <string>
#include <string_view>

#include "gossync/status.h"

namespace gossync::tls {

enum class Overwrite { kRefuse, kReplace };

// Writes `content` to `path` with permission bits `mode` (e.g. 0600), atomically:
// a temp file in the same directory, written, fsynced, chmod'ed before any
// content lands, then published and the directory fsynced. A reader sees the
// old file, the new file or (with kRefuse) no file, never a partial one.
// kRefuse publishes with link(2), so an existing `path` is never replaced even
// if it appears concurrently: AlreadyExists naming the path.
Status WriteFileAtomic(const std::string& path, std::string_view content, unsigned mode,
                       Overwrite overwrite);

// Creates `dir` (and parents) with mode 0700 if it does not exist. An existing
// directory is left as it is.
Status EnsureDirectory(const std::string& dir);

}  // namespace gossync::tls
