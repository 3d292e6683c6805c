#include "agent/tls/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

namespace gossync::tls {
namespace {

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir, errno);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno("fsync " + dir, saved);
  return Status::Ok();
}

}  // namespace

Status WriteFileAtomic(const std::string& path, std::string_view content, unsigned mode,
                       Overwrite overwrite) {
  std::string dir = DirName(path);
  std::string tmp = path + ".tmp.XXXXXX";
  // mkstemp creates the file 0600, so a secret is never readable by others,
  // not even for the moment before fchmod.
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Status::FromErrno("create temp file for " + path, errno);
  auto fail = [&](std::string_view what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::FromErrno(std::string(what) + " " + tmp, err);
  };
  if (::fchmod(fd, mode) != 0) return fail("chmod", errno);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write", errno);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync", errno);
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("close " + tmp, saved);
  }
  if (overwrite == Overwrite::kReplace) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int saved = errno;
      ::unlink(tmp.c_str());
      return Status::FromErrno("rename " + tmp + " to " + path, saved);
    }
  } else {
    // link(2) fails with EEXIST instead of replacing: no check-then-act race.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      int saved = errno;
      ::unlink(tmp.c_str());
      if (saved == EEXIST) return Status::AlreadyExists(path + " already exists");
      return Status::FromErrno("link " + tmp + " to " + path, saved);
    }
    ::unlink(tmp.c_str());
  }
  return FsyncDir(dir);
}

Status EnsureDirectory(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return Status::Ok();
  if (std::filesystem::exists(dir, ec)) {
    return Status::InvalidArgument(dir + " exists and is not a directory");
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("create directory " + dir + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return Status::FromErrno("chmod " + dir, errno);
  return Status::Ok();
}

}  // namespace gossync::tls
