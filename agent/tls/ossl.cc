#include "agent/tls/ossl.h"

#include <openssl/err.h>

#include <cerrno>
#include <cstdio>

namespace gossync::tls {

std::string DrainOpensslErrors(std::vector<unsigned long>* codes) {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    if (codes != nullptr) codes->push_back(e);
    const char* reason = ERR_reason_error_string(e);
    std::string text;
    if (reason != nullptr) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      text = buf;
    }
    // The same reason is often queued by several layers; say it once.
    if (out.find(text) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

Status OpensslError(Code code, std::string_view what) {
  std::string m(what);
  std::string errs = DrainOpensslErrors();
  if (!errs.empty()) {
    m += ": ";
    m += errs;
  }
  return Status(code, std::move(m));
}

std::string HexLower(std::span<const unsigned char> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 0xf]);
  }
  return s;
}

Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::FromErrno("open " + path, errno);
  std::string data;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    data.append(buf, n);
    if (data.size() > max_bytes) {
      std::fclose(f);
      return Status::LimitExceeded(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  bool err = std::ferror(f) != 0;
  int saved = errno;
  std::fclose(f);
  if (err) return Status::FromErrno("read " + path, saved);
  return data;
}

}  // namespace gossync::tls
