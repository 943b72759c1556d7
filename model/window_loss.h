// The loss of a model over a run of windows (SPEC §9 windows of T + 1 tokens), taken in micro-batches:
// the sum over all non-ignored labels, so callers get the mean over labels, not a mean of batch means.
// Used by evaluation and by validation during training.
#pragma once

#include <cstdint>
#include <functional>

#include "model/model.h"

namespace ratplus {

// Fills inputs and targets (T each) of window k.
using WindowSource = std::function<void(int64_t k, int32_t* inputs, int32_t* targets)>;

LossSum window_loss(Model& model, const Pattern& pattern, const WindowSource& source, int64_t windows,
                    int64_t seq_len, int64_t micro_batch);

}  // namespace ratplus
