// Entry points of the CUDA backend, called by the op front-ends (kernels/*.h) when the tensors live on
// the GPU. Only compiled into builds with RATPLUS_HAVE_CUDA.
#pragma once

#include "core/tensor.h"

namespace ratplus::cuda {

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps);
void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx);

}  // namespace ratplus::cuda
