// CPU fused softmax cross-entropy: one pass for the max, one for the sum of exponentials, one to write the
// gradient in place. Accumulates in double.
#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/backend.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace ratplus {

void cross_entropy(Tensor row_loss, Tensor logits, const int32_t* targets, double grad_scale) {
  RATPLUS_ROUTE_CUDA(logits, cuda::cross_entropy(row_loss, logits, targets, grad_scale));
  with_cpu_float(logits.dtype, __func__, [&]<class T>() {
    const int64_t vocab = logits.cols;
#pragma omp parallel for
    for (int64_t r = 0; r < logits.rows; ++r) {
      T* z = logits.ptr<T>() + r * logits.ld;
      const int32_t target = targets[r];
      if (target < 0) {
        row_loss.ptr<T>()[r] = T(0);
        if (grad_scale != 0)
          for (int64_t c = 0; c < vocab; ++c) z[c] = T(0);
        continue;
      }
      double mx = z[0];
      for (int64_t c = 1; c < vocab; ++c) mx = std::max(mx, static_cast<double>(z[c]));
      double sum = 0;
      for (int64_t c = 0; c < vocab; ++c) sum += std::exp(z[c] - mx);
      const double log_sum = std::log(sum) + mx;
      row_loss.ptr<T>()[r] = static_cast<T>(log_sum - z[target]);
      if (grad_scale != 0) {
        for (int64_t c = 0; c < vocab; ++c) z[c] = static_cast<T>(grad_scale * std::exp(z[c] - log_sum));
        z[target] -= static_cast<T>(grad_scale);
      }
    }
  });
}

}  // namespace ratplus
