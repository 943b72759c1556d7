// Building the dp × tp grid (see process_grid.h).
#include "parallel/process_grid.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"

namespace ratplus {

ProcessGrid::ProcessGrid(Communicator& world_, int tp_size, Device device) : world(world_) {
  check_internal(tp_size >= 1 && world.size() % tp_size == 0, "ProcessGrid: tp must divide the world size");
  const int tp_rank = world.rank() % tp_size, dp_rank = world.rank() / tp_size;
  dp = world.split(tp_rank, dp_rank, device);
  tp = world.split(dp_rank, tp_rank, device);
}

ProcessGrid join_process_grid(int tp, DeviceChoice device, const std::string& split_error, const std::string& setting) {
  Communicator& all = world();
  require_input(all.size() % tp == 0,
                fmt::format("{}: {} does not divide the {} ranks of the run", setting, tp, all.size()));
  require_input(split_error.empty(), fmt::format("{}: {}", setting, split_error));
  use_local_gpu(all.local_rank());
  if (all.rank() != 0) spdlog::set_level(spdlog::level::warn);
  return ProcessGrid(all, tp, select_device(device));
}

}  // namespace ratplus
