// What the fuzz targets share: running a parser on fuzzed input where only its documented failures are
// allowed. An InputError (bad input, exit 2) or a std::runtime_error (I/O failure, exit 1) is a correct
// refusal; anything else escaping — another exception type, a crash, a sanitizer report — is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/error.h"

namespace ratplus::fuzz {

template <class F>
void refusals_allowed(F&& f) {
  try {
    f();
  } catch (const InputError&) {
  } catch (const std::runtime_error&) {
  }
}

// The bytes as a file in /tmp (for readers that take a path), removed when this goes out of scope.
class TempFile {
 public:
  TempFile(const uint8_t* data, size_t size) {
    char name[] = "/tmp/ratplus_fuzz_XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) std::abort();
    for (size_t done = 0; done < size;) {
      const ssize_t n = write(fd, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    close(fd);
    path_ = name;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ratplus::fuzz
