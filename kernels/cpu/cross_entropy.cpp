// CPU softmax cross-entropy in two steps (see cross_entropy.h): the partials take one pass for the max and
// one for the sum of exponentials, the finish one pass to write the gradient in place. Accumulates in double.
#include "kernels/cpu/cpu_ops.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

void cross_entropy_partials(Tensor partials, const Tensor& logits, const int32_t* targets, int64_t vocab_begin) {
  with_cpu_float(logits.dtype, __func__, [&]<class T>() {
    const int64_t vocab = logits.cols;
    T* lse = partials.ptr<T>();
    T* target_logit = partials.ptr<T>() + partials.ld;
#pragma omp parallel for
    for (int64_t r = 0; r < logits.rows; ++r) {
      const T* z = logits.ptr<T>() + r * logits.ld;
      double mx = z[0];
      for (int64_t c = 1; c < vocab; ++c) mx = std::max(mx, static_cast<double>(z[c]));
      double sum = 0;
      for (int64_t c = 0; c < vocab; ++c) sum += std::exp(z[c] - mx);
      lse[r] = static_cast<T>(std::log(sum) + mx);
      const int64_t local = static_cast<int64_t>(targets[r]) - vocab_begin;
      target_logit[r] = targets[r] >= 0 && local >= 0 && local < vocab ? z[local] : T(0);
    }
  });
}

void cross_entropy_finish(Tensor row_loss, Tensor logits, const int32_t* targets, int64_t vocab_begin,
                          const Tensor& partials, double grad_scale) {
  with_cpu_float(logits.dtype, __func__, [&]<class T>() {
    const int64_t vocab = logits.cols, slices = partials.rows / 2;
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
      auto partial = [&](int64_t row) { return static_cast<double>(partials.ptr<T>()[row * partials.ld + r]); };
      double mx = partial(0), target_logit = 0, sum = 0;
      for (int64_t s = 1; s < slices; ++s) mx = std::max(mx, partial(2 * s));
      for (int64_t s = 0; s < slices; ++s) {
        sum += std::exp(partial(2 * s) - mx);
        target_logit += partial(2 * s + 1);
      }
      const double log_sum = std::log(sum) + mx;
      row_loss.ptr<T>()[r] = static_cast<T>(log_sum - target_logit);
      if (grad_scale == 0) continue;
      for (int64_t c = 0; c < vocab; ++c) z[c] = static_cast<T>(grad_scale * std::exp(z[c] - log_sum));
      const int64_t local = target - vocab_begin;
      if (local >= 0 && local < vocab) z[local] -= static_cast<T>(grad_scale);
    }
  });
}

void accumulate_loss(Tensor total, const Tensor& row_loss) {
  double sum = *total.ptr<double>();
  with_cpu_float(row_loss.dtype, __func__, [&]<class T>() {
    for (int64_t r = 0; r < row_loss.cols; ++r) sum += row_loss.ptr<T>()[r];
  });
  *total.ptr<double>() = sum;
}

}  // namespace ratplus::cpu
