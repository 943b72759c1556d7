// The data-parallel × tensor-parallel grid of a run's ranks. World rank = dp_rank · tp + tp_rank, so a
// tensor-parallel group is tp consecutive ranks (on one node when the launcher fills nodes in order, which
// keeps its frequent activation sums on NVLink); a data-parallel group is the ranks of one tp_rank.
#pragma once

#include <memory>
#include <string>

#include "core/config_choices.h"
#include "parallel/communicator.h"

namespace ratplus {

struct ProcessGrid {
  Communicator& world;
  std::unique_ptr<Communicator> dp, tp;  // this rank's data- and tensor-parallel groups

  // Splits `world` into groups of tp ranks (tp must divide world.size()); collective over world. With
  // device == cuda the groups carry device tensors through NCCL (the GPU must already be chosen).
  ProcessGrid(Communicator& world, int tp, Device device);
};

// Every rank of the launcher (world()) in a grid of tp-rank groups, each rank on the GPU of its node-local
// rank and logging only warnings and errors unless it is rank 0: how training and the inference commands
// start. InputError, naming `setting`, when tp does not divide the ranks or `split_error` (the model's
// reason it cannot be split tp ways, "" when it can) is not empty.
ProcessGrid join_process_grid(int tp, DeviceChoice device, const std::string& split_error, const std::string& setting);

}  // namespace ratplus
