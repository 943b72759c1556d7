// Memory plans (see memory_plan.h).
#include "core/memory_plan.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"

namespace ratplus {

namespace {

std::string gib(size_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30)); }

}  // namespace

size_t MemoryPlan::total() const {
  size_t sum = 0;
  for (const auto& item : items) sum += item.second;
  return sum;
}

void MemoryPlan::check_fits(Device device, const std::string& title, const std::string& advice) const {
  std::string text = title + ":";
  for (const auto& [what, bytes] : items) text += fmt::format("\n  {:>10}  {}", gib(bytes), what);
  const size_t available = available_memory(device);
  text += fmt::format("\n  {:>10}  total, of {} available", gib(total()), gib(available));
  spdlog::info("{}", text);
  require_input(available == 0 || total() <= available,
                fmt::format("the run needs {} on {} but {} are available; {}", gib(total()), device_name(device),
                            gib(available), advice));
}

}  // namespace ratplus
