// The output head: final RMSNorm, logits = h · Eᵀ (or an untied head), cross-entropy. Rows are processed
// in chunks of s.logits.rows, so memory for logits is chunk × V whatever the batch; in training each
// chunk's logits are turned into their gradient in place and consumed at once (dh and the head gradient),
// so the logits are computed exactly once. Under tensor parallelism the head is vocabulary-parallel: each
// rank computes the logits of its vocabulary rows, the ranks exchange two numbers per row (their slices'
// log-sum-exp and target logit), and the gradient of h is summed over them; full logits exist nowhere.
// Each chunk's row losses are added into a total on the device, which the model reads once.
#include <algorithm>
#include <vector>

#include "core/buffer.h"

#include "kernels/cross_entropy.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "model/blocks.h"

namespace ratplus {

void output_head(const Dims& dims, const Tensor& norm_w, const Tensor& head_w, const Tensor& x, const int32_t* targets,
                 OutputHeadState& s, double grad_scale, Tensor dnorm_w, Tensor dhead_w, Tensor dx) {
  rmsnorm_forward(s.h, s.rstd, x, norm_w, dims.eps);
  zero_tensor(s.loss_sum);
  const int64_t rows = dims.rows(), chunk = s.logits.rows;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    Tensor logits = s.logits.rows_slice(0, n);
    Tensor loss = s.row_loss.cols_slice(0, n);
    const Tensor h = s.h.rows_slice(r0, n);
    matmul(logits, h, false, head_w, true);
    const int32_t* chunk_targets = targets + r0;
    const int slice = dims.tp ? dims.tp->rank() : 0, slices = static_cast<int>(s.partials.rows / 2);
    cross_entropy_partials(s.partials.rows_slice(2 * slice, 2).cols_slice(0, n), logits, chunk_targets, dims.vocab_begin);
    if (slices > 1) {
      std::vector<int64_t> offsets(slices + 1);
      for (int i = 0; i <= slices; ++i) offsets[i] = i * 2 * s.partials.cols;
      dims.tp->allgather(s.partials.reshaped(1, s.partials.numel()), offsets);
    }
    cross_entropy_finish(loss, logits, chunk_targets, dims.vocab_begin, s.partials.cols_slice(0, n),
                         grad_scale);
    accumulate_loss(s.loss_sum, loss);  // ignored rows add their loss of 0
    if (grad_scale != 0) {
      matmul(s.dh.rows_slice(r0, n), logits, false, head_w, false);
      matmul(dhead_w, logits, true, h, false, 1.0, 1.0);
    }
  }
  if (grad_scale == 0) return;
  tensor_parallel_sum(dims, s.dh);
  rmsnorm_backward(dx, dnorm_w, s.dh, x, norm_w, s.rstd, false);
}

}  // namespace ratplus
