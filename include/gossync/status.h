// Status and Result<T>: errors are values (STYLE.md habit 2).
//
// Every fallible call returns Status or Result<T>; the call site reads
//   if (!s.ok()) return s;
// No exception crosses a module boundary or a libuv callback.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gossync {

enum class Code : int {
  kOk = 0,
  kInvalidArgument,   // bad input from an operator or a peer
  kNotFound,
  kAlreadyExists,
  kCorruption,        // bytes that do not decode or do not verify
  kIoError,           // the OS said no
  kLimitExceeded,     // a bound on size, count or depth was hit
  kPermissionDenied,  // authentication or authorisation failed
  kUnavailable,       // try again later
  kAborted,           // cancelled, shut down, or lost a race
  kInternal,
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status LimitExceeded(std::string m) { return {Code::kLimitExceeded, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  // An IoError that names the call and the errno text: "open foo: No such file or directory".
  static Status FromErrno(std::string_view what, int err);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: path has an empty component".
  std::string ToString() const;
  // The same status with "context: " put before the message.
  Status Prefixed(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains its absence. REQUIRES: ok() before value().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {    // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) std::abort();     // an OK Status carries no value
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

// A broken invariant: abort loudly (STYLE.md habit 3). Never for peer input.
#define GOSSYNC_CHECK(cond)                                                          \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#define GOSSYNC_RETURN_IF_ERROR(expr)      \
  do {                                     \
    ::gossync::Status _st = (expr);        \
    if (!_st.ok()) return _st;             \
  } while (0)

}  // namespace gossync
