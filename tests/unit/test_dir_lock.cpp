// DirLock: one holder at a time (two in one process, and a forked child), the holder named in the refusal,
// released when the holder goes away or dies, a stale lock file blocking nothing, the directory created, and
// directories that cannot be created refused with the system's reason.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "core/dir_lock.h"
#include "core/temp_dir.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

std::string holder(pid_t pid) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return "process " + std::to_string(pid) + " on host " + host;
}

std::string quoted(const std::string& path) { return fmt::format("'{}'", path); }

std::string content(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DirLock, CreatesTheDirectoryAndNamesItsHolderInTheLockFile) {
  const TempDir tmp;
  const std::string dir = tmp.file("a/b");
  const DirLock lock(dir);
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(lock.file(), dir + "/" + DirLock::kFileName);
  EXPECT_EQ(content(lock.file()), holder(getpid()) + "\n");
  EXPECT_EQ(fs::directory_iterator(dir)->path().filename(), DirLock::kFileName) << "the write check left a file";
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(DirLock, ASecondHolderInTheSameProcessIsRefusedUntilTheFirstLetsGo) {
  const TempDir tmp;
  std::optional<DirLock> first(std::in_place, tmp.path());
  expect_input_error([&] { DirLock second(tmp.path()); }, {quoted(tmp.path()), "in use", holder(getpid())});
  first.reset();
  const DirLock third(tmp.path());
}

TEST(DirLock, TheLockOfAProcessThatDiedBlocksNothing) {
  const TempDir tmp;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // holds the lock until killed
    try {
      const DirLock lock(tmp.path());
      const char byte = 1;
      if (write(ready[1], &byte, 1) != 1) _exit(1);
      pause();
    } catch (...) {
    }
    _exit(1);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the child could not take the lock";
  expect_input_error([&] { DirLock refused(tmp.path()); }, {"in use", holder(child)});
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(content(tmp.file(DirLock::kFileName)), holder(child) + "\n") << "the dead holder's file stays";
  const DirLock lock(tmp.path());
  EXPECT_EQ(content(lock.file()), holder(getpid()) + "\n");
  close(ready[0]);
  close(ready[1]);
}

TEST(DirLock, AStaleLockFileBlocksNothingAndIsRewritten) {
  const TempDir tmp;
  std::ofstream(tmp.file(DirLock::kFileName)) << "process 999999 on host elsewhere, a much longer line than ours\n";
  const DirLock lock(tmp.path());
  EXPECT_EQ(content(lock.file()), holder(getpid()) + "\n");
}

TEST(DirLock, DirectoriesThatCannotBeCreatedAreRefusedWithTheReason) {
  const TempDir tmp;
  std::ofstream(tmp.file("file")) << "x";
  expect_input_error([&] { DirLock lock(tmp.file("file/ck")); },
                     {quoted(tmp.file("file/ck")), "cannot create the directory", "Not a directory"});
  expect_input_error([&] { DirLock lock(tmp.file("file")); }, {quoted(tmp.file("file")), "Not a directory"});
  expect_input_error([&] { DirLock lock("/proc/x"); }, {"'/proc/x'", "No such file or directory"});
  const std::string long_name = tmp.file(std::string(100000, 'd'));
  try {
    DirLock lock(long_name);
    ADD_FAILURE() << "a name of 100000 characters was accepted";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("File name too long"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(long_name.size()) + " characters"), std::string::npos)
        << message.substr(0, 500);
    EXPECT_LT(message.size(), 1000u) << "the name is shortened in the message";
  }
}

}  // namespace
}  // namespace ratplus::test
