// The learning-rate schedule of SPEC §9: linear warmup over the first int(warmup · n) steps, then cosine
// from the peak down to min_lr at step n.
#pragma once

#include <cstdint>

#include "core/config.h"

namespace ratplus {

double learning_rate(const OptimConfig& optim, int64_t total_steps, int64_t step);

}  // namespace ratplus
