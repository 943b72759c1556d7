// Optimizer ops over flat parameter vectors: the AdamW update (SPEC §9) and the sum of squares behind
// the global gradient norm.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

struct AdamWStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0;
  double grad_scale = 1;  // clipping factor applied to every gradient
  int64_t t = 1;          // update counter after incrementing (for the bias corrections)
};

// p ← p·(1 − lr·wd); g ← grad_scale·grad; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
// p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps).  All tensors [1, N]. When params_copy is not
// empty, the updated parameters are also written to it in its element type (the bf16 weights of mixed
// precision).
void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, const AdamWStep& step,
                  Tensor params_copy = {});

// Σ x², accumulated in double in a fixed order (the same result for the same thread count).
double sum_of_squares(const Tensor& x);

}  // namespace ratplus
