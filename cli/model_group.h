// The ranks an inference command (`generate`, `bench decode`) runs its model on: this process alone, or, with
// `--tp N` under a launcher of N ranks (mpirun -n N), the N ranks of one tensor-parallel group, each holding
// its slices of the model (heads, FFN columns, vocabulary rows) on the GPU of its node-local rank. Every rank
// computes the same tokens; only rank 0 prints and writes files.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

#include "core/config_choices.h"
#include "core/device.h"
#include "core/model_config.h"
#include "parallel/process_grid.h"

namespace ratplus::cli {

struct ModelGroup {
  int64_t tp = 1;

  // Adds --tp to `cmd`.
  void add_option(CLI::App& cmd);
  // Joins the ranks (collective over them when tp > 1; InputError when tp is not the launcher's rank count or
  // does not divide the model's heads, d_ffn and vocabulary) and returns the device this rank runs on.
  Device join(const ModelConfig& config, DeviceChoice choice);
  // The tensor-parallel group to build the Model with (nullptr for one rank).
  Communicator* communicator() const { return grid_ ? grid_->tp.get() : nullptr; }
  bool prints() const { return !grid_ || grid_->world.rank() == 0; }
  // The smallest of the ranks' values (collective), so that decisions taken from it agree on every rank.
  int64_t smallest(int64_t value) const;

 private:
  std::unique_ptr<ProcessGrid> grid_;
};

}  // namespace ratplus::cli
