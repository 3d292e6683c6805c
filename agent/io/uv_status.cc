#include "agent/io/uv_status.h"

#include <uv.h>

#include <string>

namespace gossync::io {

Status UvError(std::string_view what, int uv_error) {
  std::string m(what);
  m += ": ";
  m += uv_strerror(uv_error);
  m += " (";
  m += uv_err_name(uv_error);
  m += ")";
  Code code = Code::kIoError;
  switch (uv_error) {
    case UV_ECONNREFUSED:
    case UV_ETIMEDOUT:
    case UV_EHOSTUNREACH:
    case UV_ENETUNREACH:
    case UV_ECONNRESET:
    case UV_EAI_AGAIN:
      code = Code::kUnavailable;
      break;
    case UV_ECANCELED:
      code = Code::kAborted;
      break;
    case UV_EADDRINUSE:
    case UV_EEXIST:
      code = Code::kAlreadyExists;
      break;
    case UV_ENOENT:
      code = Code::kNotFound;
      break;
    case UV_EACCES:
    case UV_EPERM:
      code = Code::kPermissionDenied;
      break;
    case UV_EINVAL:
      code = Code::kInvalidArgument;
      break;
    default:
      break;
  }
  return Status(code, std::move(m));
}

}  // namespace gossync::io
