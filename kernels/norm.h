// RMSNorm over the columns of each row: y = x / sqrt(mean(x²) + eps) · w (SPEC §2).
#pragma once

#include "core/tensor.h"

namespace ratplus {

// out, x: [rows, n]; w: [1, n]; rstd: [1, rows] receives 1/sqrt(mean(x²) + eps) for the backward.
void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps);

// dx = (or +=, with accumulate_dx) ∂L/∂x; dw += ∂L/∂w.
void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx);

}  // namespace ratplus
