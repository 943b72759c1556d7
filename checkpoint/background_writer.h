// Training checkpoints written off the training's critical path: the trainer gathers its state into the
// writer's host snapshot (distributed_checkpoint.h: the only part that stops training), then one background
// thread writes the snapshot to its file while training goes on. At most one write is in flight: the snapshot
// is reused, so the next checkpoint first waits for the previous write. A failed write removes its temporary
// file (AtomicFile), leaves the checkpoints already written as they were, and is rethrown by the next wait().
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <thread>

#include "checkpoint/distributed_checkpoint.h"

namespace ratplus {

class BackgroundCheckpointWriter {
 public:
  // Allocates the snapshot (CheckpointSnapshot: host memory, page-locked for a GPU run `peer`).
  BackgroundCheckpointWriter(const ModelConfig& model, Device peer);
  // Waits for the write in flight; its failure, if any, is logged.
  ~BackgroundCheckpointWriter();
  BackgroundCheckpointWriter(const BackgroundCheckpointWriter&) = delete;
  BackgroundCheckpointWriter& operator=(const BackgroundCheckpointWriter&) = delete;

  // The snapshot to fill before start(); only while no write is in flight.
  CheckpointSnapshot& snapshot();
  // Starts writing the snapshot as `path` with `state` on the background thread, which then runs `after`
  // (e.g. pruning older checkpoints: the new one is complete and durable by then). No write may be in flight.
  void start(const std::string& path, const TrainingState& state, std::function<void()> after);
  // Waits for the write in flight, if any, and rethrows its failure (once) as a std::runtime_error with its
  // message (which names the file): a failed write is an I/O failure, exit code 1.
  void wait();
  bool in_flight() const { return thread_.joinable(); }

 private:
  CheckpointSnapshot snapshot_;
  std::thread thread_;
  std::exception_ptr failure_;
};

}  // namespace ratplus
