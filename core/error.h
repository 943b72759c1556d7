// Error types shared by every layer, and the exit codes of `ratplus`. InputError means the user gave us
// something wrong (a config key, a data file, a checkpoint, a command-line value): the CLI turns it into exit
// code 2. Anything else that escapes is an internal failure (exit code 1).
#pragma once

#include <stdexcept>
#include <string>

namespace ratplus {

// The exit codes of `ratplus` (README, "Exit codes"); launchers act on them. The stops are not errors: a
// checkpoint was written. None collides with 128 + N, the shells' code for a process killed by signal N.
namespace exit_code {
inline constexpr int success = 0;       // done (training: every step of train.steps)
inline constexpr int failure = 1;       // internal failure (a diverged training run included)
inline constexpr int bad_input = 2;     // config, data, checkpoint, command line, checkpoint.dir unusable or in use
inline constexpr int planned_stop = 3;  // training stopped at train.stop_after
inline constexpr int preempted = 75;    // training stopped by SIGTERM or SIGINT (sysexits' EX_TEMPFAIL: run it again)
}  // namespace exit_code

// Thrown by a command that ends without an error but with a non-zero exit code (a training run that stopped
// early with a checkpoint); main() returns `code`.
struct EarlyExit {
  int code;
};

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
