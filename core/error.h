// Error types shared by every layer. InputError means the user gave us something wrong (a config key,
// a data file, a checkpoint, a command-line value): the CLI turns it into exit code 2. Anything else that
// escapes is an internal failure (exit code 1).
#pragma once

#include <stdexcept>
#include <string>

namespace ratplus {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws InputError when `ok` is false. The message should name the culprit (file, key, offset).
inline void require_input(bool ok, const std::string& message) {
  if (!ok) throw InputError(message);
}

// Throws std::logic_error for broken internal invariants (bugs, not bad input).
inline void check_internal(bool ok, const char* message) {
  if (!ok) throw std::logic_error(message);
}

}  // namespace ratplus
