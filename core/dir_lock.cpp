// The advisory directory lock (see dir_lock.h).
#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ratplus {
namespace {

namespace fs = std::filesystem;

// A path as messages quote it; a very long one shortened.
std::string quoted(const std::string& path) {
  constexpr size_t kShown = 200;
  if (path.size() <= kShown) return "'" + path + "'";
  return fmt::format("'{}...' ({} characters)", path.substr(0, kShown), path.size());
}

std::string host_name() {
  char name[256] = {};
  return ::gethostname(name, sizeof(name) - 1) == 0 ? name : "(unknown)";
}

// What the lock file says about its holder: this process's line.
std::string holder_line() { return fmt::format("process {} on host {}\n", ::getpid(), host_name()); }

[[noreturn]] void fail(const std::string& dir, const std::string& what, int error) {
  throw InputError(fmt::format("{}: {}: {}", quoted(dir), what, std::strerror(error)));
}

// Creates the directory and its parents; an existing non-directory is an error too.
void create_directory(const std::string& dir) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) throw InputError(fmt::format("{}: cannot create the directory: {}", quoted(dir), error.message()));
}

// The holder named by the lock file open at `fd`, without its newline ("" when it has not written it yet).
std::string read_holder(int fd) {
  char text[512] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string line(text, n > 0 ? static_cast<size_t>(n) : 0);
  return line.substr(0, line.find('\n'));
}

// Replaces the content of the file open at `fd` by `text` and syncs it; returns 0 or the errno of the failure.
int rewrite(int fd, const std::string& text) {
  if (::ftruncate(fd, 0) != 0) return errno;
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<size_t>(n);
  }
  return ::fsync(fd) == 0 ? 0 : errno;
}

// Takes the lock on the open lock file, or throws naming its holder.
void lock(int fd, const std::string& dir, const std::string& file) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return;
  const int error = errno;
  if (error != EWOULDBLOCK) fail(dir, "cannot lock " + quoted(file), error);
  const std::string holder = read_holder(fd);
  throw InputError(fmt::format("{} is in use by another run: {} holds its lock {}; wait for that run to end or "
                               "use another directory",
                               quoted(dir), holder.empty() ? "a process starting now" : holder, quoted(file)));
}

// Writes a file in `dir` the way checkpoints are written (a temporary, synced and renamed) and removes it.
void check_writable(const std::string& dir) {
  const std::string probe = (fs::path(dir) / ".ratplus.write-check").string();
  try {
    write_text_file_atomically(probe, holder_line());
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: files cannot be written there ({})", quoted(dir), e.what()));
  }
  std::error_code ignored;
  fs::remove(probe, ignored);
}

}  // namespace

DirLock::DirLock(const std::string& dir) : file_((fs::path(dir) / kFileName).string()) {
  create_directory(dir);
  fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (const int error = fd_ < 0 ? errno : 0) fail(dir, "cannot create files there", error);
  try {
    lock(fd_, dir, file_);
    if (const int error = rewrite(fd_, holder_line())) fail(dir, "cannot write files there", error);
    check_writable(dir);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

DirLock::~DirLock() { ::close(fd_); }

}  // namespace ratplus
