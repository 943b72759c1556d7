// An advisory lock on a directory that one process at a time may write into (a training run's checkpoint
// directory). It is flock(2) on the file `.ratplus.lock` in the directory, which then names its holder
// ("process PID on host HOST"). The kernel releases the lock when the holder's descriptor closes, also when
// the holder dies, so a lock file left behind blocks nothing: its content only says who held it last. The
// lock is taken on the file's open file description, so two DirLocks conflict even within one process.
// Taking it first creates the directory and checks that files can be written there.
#pragma once

#include <string>

namespace ratplus {

class DirLock {
 public:
  static constexpr const char* kFileName = ".ratplus.lock";

  // Creates `dir` (and its parents) if needed, takes the lock, writes this process's host and pid into the lock
  // file and checks that a file can be written, synced and renamed there. Throws InputError naming the
  // directory: with the system's reason when it cannot be created or written, or with the holder when another
  // process holds the lock.
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  int fd_ = -1;
};

}  // namespace ratplus
