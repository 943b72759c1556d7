// Bounded waiting in collectives: a peer that died or hung must end the job with a message, not leave the
// other ranks blocked forever. The limit is RATPLUS_COLLECTIVE_TIMEOUT seconds (default 1800, so that the
// other ranks outwait rank 0 writing a large checkpoint). The MPI communicator times each blocking call with a
// CollectiveWait; the NCCL communicator follows its own events against the same limit.
#pragma once

#include <chrono>
#include <string>

namespace ratplus {

using Seconds = std::chrono::duration<double>;

// RATPLUS_COLLECTIVE_TIMEOUT as a duration (the default when unset; a warning and the default when it is not a
// positive number).
Seconds collective_timeout();

// Logs "rank R: <problem>; a peer may have died or hung — aborting" and ends the process with exit code 1
// (the launcher then stops the other ranks). Callable from any thread.
[[noreturn]] void abort_collective(int rank, const std::string& problem);

// While one exists, a watchdog thread ends the process (abort_collective) if it lives longer than the timeout.
// One at a time, on the thread that calls MPI.
class CollectiveWait {
 public:
  CollectiveWait(int rank, const char* what);
  ~CollectiveWait();
  CollectiveWait(const CollectiveWait&) = delete;
  CollectiveWait& operator=(const CollectiveWait&) = delete;
};

}  // namespace ratplus
