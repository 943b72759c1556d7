// The one atomic-write helper (core/atomic_file.h) and its users: a complete write replaces the file and
// leaves no temporary; a failure in the middle of writing, or in the commit, leaves the old file untouched
// (or none) and no temporary behind, and says which file it was.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoint/hdf5_file.h"
#include "core/atomic_file.h"
#include "core/temp_dir.h"
#include "tests/unit/test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(AtomicFileTest, TextReplacesTheFileAndLeavesNoTemporary) {
  const TempDir dir;
  const std::string path = dir.file("results.json");
  write_text_file_atomically(path, "first\n");
  write_text_file_atomically(path, "second\n");
  EXPECT_EQ(read_text(path), "second\n");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"results.json"});
}

TEST(AtomicFileTest, TooLittleFreeSpaceIsRefusedBeforeAnythingIsWritten) {
  const TempDir dir;
  const std::string path = dir.file("big.h5");
  try {
    write_hdf5_atomically(path, [](Hdf5File&) { FAIL() << "the write must not start"; }, uint64_t{1} << 62);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("MB free"), std::string::npos) << what;
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFileTest, AFailureWhileWritingLeavesTheOldFileAndNoTemporary) {
  const TempDir dir;
  const std::string path = dir.file("state.txt");
  write_text_file_atomically(path, "old\n");
  EXPECT_THROW(
      {
        AtomicFile file(path);
        std::ofstream(file.temporary()) << "half of the new";
        throw std::runtime_error("the writer failed");
      },
      std::runtime_error);
  EXPECT_EQ(read_text(path), "old\n");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"state.txt"});
}

TEST(AtomicFileTest, AFailedCommitRemovesTheTemporaryAndNamesTheFile) {
  const TempDir dir;
  const std::string path = dir.file("occupied");
  fs::create_directory(path);  // a non-empty directory cannot be renamed over
  std::ofstream(path + "/inside") << "x";
  AtomicFile file(path);
  std::ofstream(file.temporary()) << "new";
  expect_input_error([&] { file.commit(); }, {path, "cannot rename"});
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"occupied"});
}

TEST(AtomicFileTest, AnUnwritableDirectoryIsAnInputErrorNamingTheFile) {
  const std::string path = "/nonexistent-directory/results.json";
  expect_input_error([&] { write_text_file_atomically(path, "x"); }, {path});
}

TEST(AtomicFileTest, Hdf5FailureInTheMiddleLeavesNoFileAndNoTemporary) {
  const TempDir dir;
  const std::string path = dir.file("checkpoint.h5");
  const std::vector<float> values(1000, 1.5f);
  EXPECT_THROW(write_hdf5_atomically(path,
                                     [&](Hdf5File& file) {
                                       file.write_floats("/model/a", values.data(), {10, 100});
                                       throw std::runtime_error("a rank failed");
                                     }),
               std::runtime_error);
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace ratplus::test
