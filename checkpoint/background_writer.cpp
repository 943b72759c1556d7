// The background checkpoint writer (see background_writer.h).
#include "checkpoint/background_writer.h"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

#include "core/device.h"
#include "core/error.h"

namespace ratplus {

BackgroundCheckpointWriter::BackgroundCheckpointWriter(const ModelConfig& model, Device peer) {
  thread_ = std::thread([this, model, peer, gpu = current_gpu()] {
    try {
      if (peer == Device::cuda) use_local_gpu(gpu);
      snapshot_.emplace(model, peer);
    } catch (const std::exception& e) {  // no memory for it: an internal failure, exit code 1
      failure_ = std::make_exception_ptr(std::runtime_error(e.what()));
    }
  });
}

BackgroundCheckpointWriter::~BackgroundCheckpointWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    spdlog::error("the checkpoint written in the background failed: {}", e.what());
  }
}

CheckpointSnapshot& BackgroundCheckpointWriter::snapshot() {
  check_internal(!in_flight() && snapshot_, "checkpoint snapshot: not allocated yet, or a write of it is in flight");
  return *snapshot_;
}

void BackgroundCheckpointWriter::start(const std::string& path, const TrainingState& state,
                                       std::function<void()> after) {
  check_internal(!in_flight() && !failure_ && snapshot_,
                 "background checkpoint: the allocation or the previous write was not waited for");
  thread_ = std::thread([this, path, state, after = std::move(after)] {
    try {
      write_checkpoint_snapshot(path, *snapshot_, state);
      if (after) after();
    } catch (const std::exception& e) {  // an I/O failure, whatever its kind, never bad input
      failure_ = std::make_exception_ptr(std::runtime_error(e.what()));
    }
  });
}

void BackgroundCheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
}

}  // namespace ratplus
