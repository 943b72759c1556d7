// CPU AdamW and sum of squares. Each element's update is computed in double and stored in the parameter
// type (and, when asked, in the copy's type). The sum of squares splits the vector into fixed blocks whose partial sums are added in block
// order, so it is deterministic and independent of thread scheduling.
#include "kernels/cpu/cpu_ops.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, const AdamWStep& s, Tensor params_copy) {
  with_cpu_float(params.dtype, __func__, [&]<class T>() {
    const int64_t n = params.numel();
    T* p = params.ptr<T>();
    const T* g = grads.ptr<T>();
    float* mp = m.ptr<float>();
    float* vp = v.ptr<float>();
    const double decay = 1.0 - s.lr * s.weight_decay;
    const double c1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.t));
    const double c2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.t));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double gi = s.grad_scale * static_cast<double>(g[i]);
      const double mi = s.beta1 * mp[i] + (1.0 - s.beta1) * gi;
      const double vi = s.beta2 * vp[i] + (1.0 - s.beta2) * gi * gi;
      mp[i] = static_cast<float>(mi);
      vp[i] = static_cast<float>(vi);
      p[i] = static_cast<T>(p[i] * decay - s.lr * (mi / c1) / (std::sqrt(vi / c2) + s.eps));
    }
  });
  if (!params_copy.empty()) convert(params_copy, params);
}

double sum_of_squares(const Tensor& x) {
  double total = 0;
  with_cpu_float(x.dtype, __func__, [&]<class T>() {
    constexpr int64_t kBlock = 1 << 16;
    const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
    const T* p = x.ptr<T>();
    std::vector<double> partial(blocks);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      double s = 0;
      for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) s += static_cast<double>(p[i]) * p[i];
      partial[b] = s;
    }
    for (double s : partial) total += s;
  });
  return total;
}

}  // namespace ratplus::cpu
