// CPU RoPE. Angles are computed in double from the position and channel, so long positions stay exact.
#include "kernels/cpu/cpu_ops.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

void rope(Tensor out, const Tensor& x, int64_t seq_len, int64_t n_heads, double base, int64_t pos0, bool inverse) {
  with_cpu_float(x.dtype, __func__, [&]<class T>() {
    const int64_t dh = x.cols / n_heads, half = dh / 2;
    const double sign = inverse ? -1.0 : 1.0;
#pragma omp parallel for
    for (int64_t r = 0; r < x.rows; ++r) {
      const double pos = static_cast<double>(pos0 + r % seq_len);
      for (int64_t c = 0; c < half; ++c) {
        const double angle = pos * std::pow(base, -2.0 * c / dh);
        const T cs = static_cast<T>(std::cos(angle)), sn = static_cast<T>(sign * std::sin(angle));
        for (int64_t h = 0; h < n_heads; ++h) {
          const int64_t i = h * dh + c;
          const T x1 = at<T>(x, r, i), x2 = at<T>(x, r, i + half);
          at<T>(out, r, i) = x1 * cs - x2 * sn;
          at<T>(out, r, i + half) = x2 * cs + x1 * sn;
        }
      }
    }
  });
}

}  // namespace ratplus::cpu
