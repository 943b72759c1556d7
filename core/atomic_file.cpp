// Atomic file writes (see atomic_file.h).
#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <fmt/format.h>
#include <utility>

#include "core/error.h"

namespace ratplus {
namespace {

// fsync()s a file or directory; returns 0 or the errno of the failure.
int fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int result = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return result;
}

// Writes all of `text` to `fd`; returns 0 or the errno of the failure.
int write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

std::optional<uint64_t> free_bytes(const std::string& directory) {
  struct statvfs fs {};
  if (::statvfs(directory.empty() ? "." : directory.c_str(), &fs) != 0) return std::nullopt;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

AtomicFile::AtomicFile(std::string path, uint64_t expected_bytes)
    : path_(std::move(path)), temporary_(path_ + ".tmp") {
  if (expected_bytes == 0) return;
  const std::optional<uint64_t> free = free_bytes(std::filesystem::path(path_).parent_path().string());
  if (free && *free < expected_bytes)
    throw std::runtime_error(fmt::format("cannot write '{}': it needs about {:.1f} MB and its file system has {:.1f} MB "
                                         "free",
                                         path_, expected_bytes / 1e6, *free / 1e6));
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temporary_.c_str());
}

void AtomicFile::commit() {
  const auto fail = [&](const std::string& what, int error) {
    std::remove(temporary_.c_str());
    throw InputError(fmt::format("cannot write '{}': {}: {}", path_, what, std::strerror(error)));
  };
  if (const int error = fsync_path(temporary_, O_RDONLY)) fail("cannot sync '" + temporary_ + "' to disk", error);
  if (std::rename(temporary_.c_str(), path_.c_str()) != 0) fail("cannot rename '" + temporary_ + "'", errno);
  committed_ = true;
  // Some file systems cannot sync directories (EINVAL); that is not worth failing over.
  const std::string directory = std::filesystem::path(path_).parent_path().string();
  const int error = fsync_path(directory.empty() ? "." : directory, O_RDONLY | O_DIRECTORY);
  if (error != 0 && error != EINVAL)
    throw InputError(fmt::format("cannot write '{}': cannot sync its directory: {}", path_, std::strerror(error)));
}

void write_text_file_atomically(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  const int fd = ::open(file.temporary().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
  const int write_error = write_all(fd, text);
  const int close_error = ::close(fd) == 0 ? 0 : errno;
  if (const int error = write_error ? write_error : close_error)
    throw InputError(fmt::format("cannot write '{}': {}", path, std::strerror(error)));
  file.commit();
}

}  // namespace ratplus
