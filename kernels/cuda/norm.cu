// RMSNorm on the GPU, f32, one thread block per row.
// Forward: each block reduces Σx² over its row (warp shuffles, then shared memory), then writes
// y = x · rstd · w. Backward: each block reduces Σ dy·w·x over its row and writes dx; dw is accumulated
// per block over a strided set of rows in registers, then added with one atomicAdd per column and block.
// Bytes: forward reads x and w, writes y (≈ 8 bytes per element); backward reads x, dy (and dx when
// accumulating) and writes dx (≈ 12–16 bytes per element). FLOPs are a handful per element, so both are
// memory-bound: the target is HBM bandwidth.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_forward_kernel(float* out, int64_t ld_out, float* rstd, const float* x, int64_t ld_x,
                                       const float* w, int64_t cols, float eps) {
  __shared__ float shared[32];
  const float* xr = x + blockIdx.x * ld_x;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss += xr[c] * xr[c];
  const float inv = rsqrtf(block_sum(ss, shared) / cols + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = inv;
  float* yr = out + blockIdx.x * ld_out;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * inv * w[c];
}

__global__ void rmsnorm_backward_dx_kernel(float* dx, int64_t ld_dx, const float* dout, int64_t ld_dout,
                                           const float* x, int64_t ld_x, const float* w, const float* rstd,
                                           int64_t cols, bool accumulate) {
  __shared__ float shared[32];
  const float* xr = x + blockIdx.x * ld_x;
  const float* gr = dout + blockIdx.x * ld_dout;
  float dot = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += gr[c] * w[c] * xr[c];
  const float inv = rstd[blockIdx.x];
  const float k = block_sum(dot, shared) * inv * inv * inv / cols;
  float* dxr = dx + blockIdx.x * ld_dx;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float g = inv * w[c] * gr[c] - xr[c] * k;
    dxr[c] = accumulate ? dxr[c] + g : g;
  }
}

// Grid: (column tiles of kThreads, row groups); each thread sums its column over the group's rows.
__global__ void rmsnorm_backward_dw_kernel(float* dw, const float* dout, int64_t ld_dout, const float* x,
                                           int64_t ld_x, const float* rstd, int64_t rows, int64_t cols) {
  const int64_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float acc = 0;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) acc += dout[r * ld_dout + c] * x[r * ld_x + c] * rstd[r];
  atomicAdd(dw + c, acc);
}

}  // namespace

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps) {
  require_f32(x, "rmsnorm_forward");
  if (x.rows == 0) return;
  rmsnorm_forward_kernel<<<x.rows, kThreads>>>(out.ptr<float>(), out.ld, rstd.ptr<float>(), x.ptr<float>(), x.ld,
                                               w.ptr<float>(), x.cols, static_cast<float>(eps));
  check_launch("rmsnorm_forward_kernel");
}

void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx) {
  require_f32(x, "rmsnorm_backward");
  if (x.rows == 0) return;
  rmsnorm_backward_dx_kernel<<<x.rows, kThreads>>>(dx.ptr<float>(), dx.ld, dout.ptr<float>(), dout.ld,
                                                   x.ptr<float>(), x.ld, w.ptr<float>(), rstd.ptr<float>(), x.cols,
                                                   accumulate_dx);
  check_launch("rmsnorm_backward_dx_kernel");
  const dim3 grid((x.cols + kThreads - 1) / kThreads, static_cast<unsigned>(x.rows < 256 ? x.rows : 256));
  rmsnorm_backward_dw_kernel<<<grid, kThreads>>>(dw.ptr<float>(), dout.ptr<float>(), dout.ld, x.ptr<float>(), x.ld,
                                                 rstd.ptr<float>(), x.rows, x.cols);
  check_launch("rmsnorm_backward_dw_kernel");
}

}  // namespace ratplus::cuda
