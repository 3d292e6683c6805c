// libuv error codes as Status values.
#pragma once

#include <string_view>

#include "gossync/status.h"

namespace gossync::io {

// "what: connection refused (ECONNREFUSED)" with a Code that lets callers tell the
// usual cases apart: kUnavailable for refused / unreachable / timed out peers,
// kAborted for UV_ECANCELED, kAlreadyExists for EADDRINUSE / EEXIST, kNotFound for
// ENOENT, kPermissionDenied for EACCES / EPERM, kInvalidArgument for EINVAL,
// kIoError otherwise. REQUIRES: uv_error < 0.
Status UvError(std::string_view what, int uv_error);

}  // namespace gossync::io
