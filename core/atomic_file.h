// Writing a file so that readers see either the old file or the complete new one. The content goes to a
// temporary file beside it (PATH.tmp, same directory, so the rename cannot cross file systems); commit()
// syncs it to disk, renames it over PATH and syncs the directory, so the rename survives a crash as well.
// Until commit() succeeds the temporary belongs to the AtomicFile, which removes it on any failure or when
// it goes out of scope uncommitted: a failed write leaves neither a partial PATH nor a temporary behind.
// Failures are InputErrors naming the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ratplus {

// Bytes an unprivileged writer can still put on the file system holding `directory`; nullopt when it cannot
// be told (the write itself will then say why it fails).
std::optional<uint64_t> free_bytes(const std::string& directory);

class AtomicFile {
 public:
  // Nothing is created yet: the writer creates temporary() itself, writes it and closes it. With
  // `expected_bytes`, the file system must first have that much space free (else std::runtime_error naming
  // both numbers): libraries that cannot fail cleanly when a disk fills mid-write (HDF5) are never started.
  explicit AtomicFile(std::string path, uint64_t expected_bytes = 0);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temporary() const { return temporary_; }

  // Syncs the (closed) temporary to disk, renames it to path() and syncs the directory. On failure the
  // temporary is removed and an InputError thrown.
  void commit();

 private:
  std::string path_, temporary_;
  bool committed_ = false;
};

// The whole text through an AtomicFile.
void write_text_file_atomically(const std::string& path, const std::string& text);

}  // namespace ratplus
