// Training checkpoints written off the training's critical path: the writer allocates its host snapshot on
// its thread as soon as it is made (page-locking 12 bytes per parameter takes seconds: 8 s for the 1.5B
// config's 17.7 GB), so the run's first steps hide it. The trainer gathers its state into the
// writer's host snapshot (distributed_checkpoint.h: the only part that stops training), then one background
// thread writes the snapshot to its file while training goes on. At most one write is in flight: the snapshot
// is reused, so the next checkpoint first waits for the previous write. A failed write removes its temporary
// file (AtomicFile), leaves the checkpoints already written as they were, and is rethrown by the next wait().
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "checkpoint/distributed_checkpoint.h"

namespace ratplus {

class BackgroundCheckpointWriter {
 public:
  // Starts allocating the snapshot (CheckpointSnapshot: host memory, page-locked for a GPU run `peer`) on the
  // background thread, for the calling thread's GPU; wait() waits for it, and rethrows its failure.
  BackgroundCheckpointWriter(const ModelConfig& model, Device peer);
  // Waits for the write in flight; its failure, if any, is logged.
  ~BackgroundCheckpointWriter();
  BackgroundCheckpointWriter(const BackgroundCheckpointWriter&) = delete;
  BackgroundCheckpointWriter& operator=(const BackgroundCheckpointWriter&) = delete;

  // The snapshot to fill before start(); only after wait(), while nothing is in flight.
  CheckpointSnapshot& snapshot();
  // Starts writing the snapshot as `path` with `state` on the background thread, which then runs `after`
  // (e.g. pruning older checkpoints: the new one is complete and durable by then). No write may be in flight.
  void start(const std::string& path, const TrainingState& state, std::function<void()> after);
  // Waits for the allocation or write in flight, if any, and rethrows its failure (once) as a
  // std::runtime_error with its message (which names the file): a failed write is an I/O failure, exit 1.
  void wait();
  bool in_flight() const { return thread_.joinable(); }

 private:
  std::optional<CheckpointSnapshot> snapshot_;  // once allocated
  std::thread thread_;
  std::exception_ptr failure_;
};

}  // namespace ratplus
