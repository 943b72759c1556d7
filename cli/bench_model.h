// The model a decoding or prefill benchmark runs: random weights from a config (its init, seeded by
// train.seed) or a checkpoint's weights — the --config / --checkpoint options both commands share; and the
// training config the training and checkpoint benchmarks run.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/model_config.h"
#include "model/model.h"

namespace ratplus::cli {

struct BenchModelSource {
  std::string config, checkpoint;

  // Adds the two (mutually exclusive) options to `cmd`.
  void add_options(CLI::App& cmd);
  // The model config (InputError unless exactly one of the two was given); reads the file once.
  ModelConfig model_config();
  // Random weights from the config, or the checkpoint's.
  void load_weights(Model& model) const;

 private:
  uint64_t seed_ = 0;
};

// Points `c` at one token shard for training and validation, with checkpoints written to checkpoint_dir and
// never resumed, and every other side output of training (validation, JSONL log, metrics endpoint) off.
void isolate_benchmark_run(ExperimentConfig& c, const std::string& shard, const std::string& checkpoint_dir);

}  // namespace ratplus::cli
