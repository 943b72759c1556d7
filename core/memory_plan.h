// Bytes a run will allocate, by purpose, known before anything is allocated (llm.c's habit): the model,
// the trainer and evaluation each add their items, and the run prints the plan and refuses one that the
// device cannot hold instead of failing mid-step.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace ratplus {

struct MemoryPlan {
  std::vector<std::pair<std::string, size_t>> items;

  size_t total() const;
  void append(const MemoryPlan& other) { items.insert(items.end(), other.items.begin(), other.items.end()); }
  // Logs the plan (`title`, one line per item, the total against what `device` has free) and throws
  // InputError ending in `advice` when it does not fit.
  void check_fits(Device device, const std::string& title, const std::string& advice) const;
};

}  // namespace ratplus
