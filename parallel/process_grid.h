// The data-parallel × tensor-parallel grid of a run's ranks. World rank = dp_rank · tp + tp_rank, so a
// tensor-parallel group is tp consecutive ranks (on one node when the launcher fills nodes in order, which
// keeps its frequent activation sums on NVLink); a data-parallel group is the ranks of one tp_rank.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace ratplus {

struct ProcessGrid {
  Communicator& world;
  std::unique_ptr<Communicator> dp, tp;  // this rank's data- and tensor-parallel groups

  // Splits `world` into groups of tp ranks (tp must divide world.size()); collective over world. With
  // device == cuda the groups carry device tensors through NCCL (the GPU must already be chosen).
  ProcessGrid(Communicator& world, int tp, Device device);
};

}  // namespace ratplus
