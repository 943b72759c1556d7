// Matrix products: C = alpha · op(A) · op(B) + beta · C, op = identity or transpose.
// Linear layers store weights [out, in] (y = x Wᵀ), so the model calls this with trans_b for the forward
// pass and plain or trans_a products for the two backward products. The forward of a linear layer together
// with what follows it in the model has an entry point of its own (linear_add, linear_gelu), so that a
// backend may fuse the two; each gives what the composition of the ops it names gives.
#pragma once

#include "core/tensor.h"

namespace ratplus {

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha = 1.0,
            double beta = 0.0);

// y = residual + a · wᵀ (a linear layer's output added to the residual stream): copy_tensor(y, residual),
// then matmul(y, a, false, w, true, 1, 1). residual may be y itself.
void linear_add(Tensor y, const Tensor& residual, const Tensor& a, const Tensor& w);

// pre = a · wᵀ and act = GELU(pre) (an FFN's first layer, keeping pre for the backward): matmul, then
// gelu_forward.
void linear_gelu(Tensor pre, Tensor act, const Tensor& a, const Tensor& w);

}  // namespace ratplus
