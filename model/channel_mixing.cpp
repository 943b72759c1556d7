// The FFN block: z = y + GELU(RMSNorm(y) · W_1ᵀ) · W_2ᵀ, forward and backward.
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "model/blocks.h"

namespace ratplus {

void channel_mixing_forward(const Dims& dims, const ChannelMixingWeights& w, const Tensor& x, Tensor y,
                            ChannelMixingState& s) {
  rmsnorm_forward(s.h, s.rstd, x, w.norm, dims.eps);
  linear_gelu(s.pre, s.act, s.h, w.fc1);
  row_parallel_output(dims, y, x, s.act, w.fc2);
}

void channel_mixing_backward(const Dims& dims, const ChannelMixingWeights& w, const ChannelMixingWeights& grad,
                             const Tensor& x, const ChannelMixingState& s, const Tensor& dy, Tensor dx,
                             ChannelMixingScratch& scratch) {
  matmul(scratch.d_act, dy, false, w.fc2, false);
  matmul(grad.fc2, dy, true, s.act, false, 1.0, 1.0);
  gelu_backward(scratch.d_act, scratch.d_act, s.pre);
  matmul(scratch.dh, scratch.d_act, false, w.fc1, false);
  tensor_parallel_sum(dims, scratch.dh);
  matmul(grad.fc1, scratch.d_act, true, s.h, false, 1.0, 1.0);
  if (dx.data != dy.data) copy_tensor(dx, dy);
  rmsnorm_backward(dx, grad.norm, scratch.dh, x, w.norm, s.rstd, true);
}

}  // namespace ratplus
