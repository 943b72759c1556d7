// RoPE on the GPU (f32 or bf16, f32 math): one thread per (row, head, channel pair) rotates the pair
// (c, c + dh/2) by pos · base^(−2c/dh) (or its negative for the inverse/backward). Reads and writes two
// values per pair for a sincos and four FMAs: memory-bound. The angle is computed in double so that long
// positions stay exact.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

template <class A>
__global__ void rope_kernel(Mat<A> out, Mat<A> x, int64_t rows, int64_t seq, int64_t heads, int64_t half,
                            double log_base, int64_t pos0, double sign) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= rows * heads * half) return;
  const int64_t r = i / (heads * half), h = i / half % heads, c = i % half;
  const double angle = static_cast<double>(pos0 + r % seq) * exp(-2.0 * c / (2 * half) * log_base);
  double s, co;
  sincos(angle, &s, &co);
  const float cs = static_cast<float>(co), sn = static_cast<float>(sign * s);
  const int64_t j = h * 2 * half + c;
  const float x1 = x(r, j), x2 = x(r, j + half);
  out.set(r, j, x1 * cs - x2 * sn);
  out.set(r, j + half, x2 * cs + x1 * sn);
}

}  // namespace

void rope(Tensor out, const Tensor& x, int64_t seq_len, int64_t n_heads, double base, int64_t pos0, bool inverse) {
  const int64_t half = x.cols / n_heads / 2, n = x.rows * n_heads * half;
  if (n == 0) return;
  with_activation_type(x.dtype, __func__, [&]<class A>() {
    rope_kernel<A><<<blocks_for(n, kThreads), kThreads, 0, cuda_stream()>>>(
        mat<A>(out), mat<A>(x), x.rows, seq_len, n_heads, half, std::log(base), pos0, inverse ? -1.0 : 1.0);
  });
  check_launch(__func__);
}

}  // namespace ratplus::cuda
