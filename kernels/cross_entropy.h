// Softmax cross-entropy fused with its gradient: the logits are read once for the loss and overwritten in
// place by the gradient, so probabilities are never stored separately.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

// logits: [rows, V]; targets: rows entries (host or device, like the tensors), < 0 = ignored.
// row_loss[0, r] = −log softmax(logits[r])[target] (0 for ignored rows).
// With grad_scale != 0, logits[r] is replaced by grad_scale · (softmax(logits[r]) − onehot(target))
// (zero for ignored rows); with grad_scale == 0 the logits are left as they are.
void cross_entropy(Tensor row_loss, Tensor logits, const int32_t* targets, double grad_scale);

}  // namespace ratplus
