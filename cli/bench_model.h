// The model a decoding or prefill benchmark runs: random weights from a config (its init, seeded by
// train.seed) or a checkpoint's weights — the --config / --checkpoint options both commands share.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

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

}  // namespace ratplus::cli
