// Matrix products: C = alpha · op(A) · op(B) + beta · C, op = identity or transpose.
// Linear layers store weights [out, in] (y = x Wᵀ), so the model calls this with trans_b for the forward
// pass and plain or trans_a products for the two backward products.
#pragma once

#include "core/tensor.h"

namespace ratplus {

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha = 1.0,
            double beta = 0.0);

}  // namespace ratplus
