// The collective watchdog (see collective_watchdog.h): one thread per process, started with the first wait,
// checking the current wait five times a second.
#include "parallel/collective_watchdog.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace ratplus {

namespace {

constexpr auto kWatchInterval = std::chrono::milliseconds(200);
using Clock = std::chrono::steady_clock;

class Watchdog {
 public:
  Watchdog() : timeout_(collective_timeout()), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void begin(int rank, const char* what) {
    std::lock_guard lock(mutex_);
    rank_ = rank;
    what_ = what;
    since_ = Clock::now();
    waiting_ = true;
  }
  void end() {
    std::lock_guard lock(mutex_);
    waiting_ = false;
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, kWatchInterval, [this] { return stopping_; })) {
      if (!waiting_) continue;
      const Seconds waited = Clock::now() - since_;
      if (waited > timeout_)
        abort_collective(rank_, fmt::format("MPI timeout: {} waiting for {:.0f} s (limit {} s, "
                                            "RATPLUS_COLLECTIVE_TIMEOUT)",
                                            what_, waited.count(), timeout_.count()));
    }
  }

  const Seconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false, waiting_ = false;
  int rank_ = 0;
  const char* what_ = "";
  Clock::time_point since_;
  std::thread thread_;  // last: starts once the rest is ready
};

Watchdog& watchdog() {
  static Watchdog instance;
  return instance;
}

}  // namespace

Seconds collective_timeout() {
  const Seconds fallback(1800);
  const char* text = std::getenv("RATPLUS_COLLECTIVE_TIMEOUT");
  if (!text) return fallback;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(seconds) || seconds <= 0) {
    spdlog::warn("RATPLUS_COLLECTIVE_TIMEOUT='{}' is not a positive number of seconds; using {} s", text,
                 fallback.count());
    return fallback;
  }
  return Seconds(seconds);
}

void abort_collective(int rank, const std::string& problem) {
  spdlog::error("rank {}: {}; a peer may have died or hung — aborting", rank, problem);
  spdlog::default_logger()->flush();
  std::_Exit(1);
}

CollectiveWait::CollectiveWait(int rank, const char* what) { watchdog().begin(rank, what); }
CollectiveWait::~CollectiveWait() { watchdog().end(); }

}  // namespace ratplus
