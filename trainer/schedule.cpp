// Cosine schedule with linear warmup (see schedule.h).
#include "trainer/schedule.h"

#include <cmath>
#include <numbers>

namespace ratplus {

double learning_rate(const OptimConfig& optim, int64_t total_steps, int64_t step) {
  const auto warmup = static_cast<int64_t>(optim.warmup * static_cast<double>(total_steps));
  if (step < warmup) return optim.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total_steps <= warmup) return optim.min_lr;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(total_steps - warmup);
  return optim.min_lr + (optim.lr - optim.min_lr) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
}

}  // namespace ratplus
