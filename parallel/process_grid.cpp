// Building the dp × tp grid (see process_grid.h).
#include "parallel/process_grid.h"

#include "core/error.h"

namespace ratplus {

ProcessGrid::ProcessGrid(Communicator& world_, int tp_size, Device device) : world(world_) {
  check_internal(tp_size >= 1 && world.size() % tp_size == 0, "ProcessGrid: tp must divide the world size");
  const int tp_rank = world.rank() % tp_size, dp_rank = world.rank() / tp_size;
  dp = world.split(tp_rank, dp_rank, device);
  tp = world.split(dp_rank, tp_rank, device);
}

}  // namespace ratplus
