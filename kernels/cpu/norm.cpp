// CPU RMSNorm, forward and backward, one row per iteration (rows in parallel).
// Backward: with r = rstd and n columns, ∂L/∂x_i = r w_i dy_i − x_i r³/n · Σ_j dy_j w_j x_j.
#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps) {
  with_cpu_float(x.dtype, __func__, [&]<class T>() {
    const T* wp = w.ptr<T>();
#pragma omp parallel for
    for (int64_t r = 0; r < x.rows; ++r) {
      const T* xr = x.ptr<T>() + r * x.ld;
      T* yr = out.ptr<T>() + r * out.ld;
      double ss = 0;
      for (int64_t c = 0; c < x.cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
      const T inv = static_cast<T>(1.0 / std::sqrt(ss / x.cols + eps));
      rstd.ptr<T>()[r] = inv;
      for (int64_t c = 0; c < x.cols; ++c) yr[c] = xr[c] * inv * wp[c];
    }
  });
}

void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx) {
  with_cpu_float(x.dtype, __func__, [&]<class T>() {
    const int64_t n = x.cols;
    const T* wp = w.ptr<T>();
    // dw: per-block partial sums over fixed row blocks, added in block order (deterministic).
    constexpr int64_t kRowBlock = 64;
    const int64_t blocks = (x.rows + kRowBlock - 1) / kRowBlock;
    std::vector<double> partial(blocks * n, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      double* dw_block = partial.data() + blk * n;
      for (int64_t r = blk * kRowBlock; r < std::min(x.rows, (blk + 1) * kRowBlock); ++r) {
        const T* xr = x.ptr<T>() + r * x.ld;
        const T* gr = dout.ptr<T>() + r * dout.ld;
        T* dxr = dx.ptr<T>() + r * dx.ld;
        const double inv = rstd.ptr<T>()[r];
        double dot = 0;
        for (int64_t c = 0; c < n; ++c) dot += static_cast<double>(gr[c]) * wp[c] * xr[c];
        const double k = dot * inv * inv * inv / n;
        for (int64_t c = 0; c < n; ++c) {
          const T g = static_cast<T>(inv * wp[c] * gr[c] - xr[c] * k);
          dxr[c] = accumulate_dx ? dxr[c] + g : g;
          dw_block[c] += static_cast<double>(gr[c]) * xr[c] * inv;
        }
      }
    }
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t c = 0; c < n; ++c) dw.ptr<T>()[c] += static_cast<T>(partial[blk * n + c]);
  });
}

}  // namespace ratplus::cpu
