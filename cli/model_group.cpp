// Joining the ranks of an inference command (see model_group.h).
#include "cli/model_group.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/parameters.h"

namespace ratplus::cli {

void ModelGroup::add_option(CLI::App& cmd) {
  cmd.add_option("--tp", tp, "split the model over this many ranks (launch them with mpirun -n N)")
      ->capture_default_str();
}

Device ModelGroup::join(const ModelConfig& config, DeviceChoice choice) {
  require_input(tp >= 1, fmt::format("--tp must be at least 1, got {}", tp));
  if (tp == 1) return select_device(choice);
  Communicator& all = world();
  require_input(all.size() == tp, fmt::format("--tp {} needs {} ranks (mpirun -n {}), this run has {}", tp, tp, tp,
                                              all.size()));
  const int n = static_cast<int>(tp);
  grid_ = std::make_unique<ProcessGrid>(join_process_grid(n, choice, tensor_parallel_error(config, n), "--tp"));
  return select_device(choice);
}

int64_t ModelGroup::smallest(int64_t value) const {
  if (!grid_) return value;
  Communicator& all = grid_->world;
  std::vector<double> values(all.size(), 0.0);
  values[all.rank()] = static_cast<double>(value);
  all.allreduce_sum(values);
  return static_cast<int64_t>(*std::min_element(values.begin(), values.end()));
}

}  // namespace ratplus::cli
