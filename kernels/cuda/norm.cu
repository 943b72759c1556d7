// RMSNorm on the GPU (f32 or bf16 activations and weight, f32 math, f32 rstd and weight gradient), one
// thread block per row. Forward: each block reduces Σx² over its row (warp shuffles, then shared memory),
// then writes y = x · rstd · w. Backward: each block reduces Σ dy·w·x over its row and writes dx; dw is
// accumulated per block over a strided set of rows in registers, then added with one atomicAdd per column
// and block. Bytes per element: forward reads x and w, writes y; backward reads x, dy (and dx when
// accumulating) and writes dx. A handful of FLOPs per element: memory-bound, the target is HBM bandwidth.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

template <class A>
__global__ void rmsnorm_forward_kernel(Mat<A> out, float* rstd, Mat<A> x, Mat<A> w, int64_t cols, float eps) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss += x(r, c) * x(r, c);
  const float inv = rsqrtf(block_sum(ss, shared) / cols + eps);
  if (threadIdx.x == 0) rstd[r] = inv;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out.set(r, c, x(r, c) * inv * w(0, c));
}

template <class A>
__global__ void rmsnorm_backward_dx_kernel(Mat<A> dx, Mat<A> dout, Mat<A> x, Mat<A> w, const float* rstd,
                                           int64_t cols, bool accumulate) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  float dot = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dout(r, c) * w(0, c) * x(r, c);
  const float inv = rstd[r];
  const float k = block_sum(dot, shared) * inv * inv * inv / cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float g = inv * w(0, c) * dout(r, c) - x(r, c) * k;
    dx.set(r, c, accumulate ? dx(r, c) + g : g);
  }
}

// Grid: (column tiles of kThreads, row groups); each thread sums its column over the group's rows.
template <class A>
__global__ void rmsnorm_backward_dw_kernel(float* dw, Mat<A> dout, Mat<A> x, const float* rstd, int64_t rows,
                                           int64_t cols) {
  const int64_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float acc = 0;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) acc += dout(r, c) * x(r, c) * rstd[r];
  atomicAdd(dw + c, acc);
}

template <class A>
void forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps) {
  rmsnorm_forward_kernel<A><<<x.rows, kThreads, 0, cuda_stream()>>>(mat<A>(out), rstd.ptr<float>(), mat<A>(x),
                                                                    mat<A>(w), x.cols, static_cast<float>(eps));
  check_launch("rmsnorm_forward_kernel");
}

template <class A>
void backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
              bool accumulate_dx) {
  rmsnorm_backward_dx_kernel<A><<<x.rows, kThreads, 0, cuda_stream()>>>(mat<A>(dx), mat<A>(dout), mat<A>(x), mat<A>(w),
                                                                        rstd.ptr<float>(), x.cols, accumulate_dx);
  check_launch("rmsnorm_backward_dx_kernel");
  const dim3 grid(blocks_for(x.cols, kThreads), static_cast<unsigned>(x.rows < 256 ? x.rows : 256));
  rmsnorm_backward_dw_kernel<A><<<grid, kThreads, 0, cuda_stream()>>>(dw.ptr<float>(), mat<A>(dout), mat<A>(x),
                                                                      rstd.ptr<float>(), x.rows, x.cols);
  check_launch("rmsnorm_backward_dw_kernel");
}

}  // namespace

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps) {
  if (x.rows == 0) return;
  with_activation_type(x.dtype, __func__, [&]<class A>() { forward<A>(out, rstd, x, w, eps); });
}

void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx) {
  if (x.rows == 0) return;
  with_activation_type(x.dtype, __func__, [&]<class A>() { backward<A>(dx, dw, dout, x, w, rstd, accumulate_dx); });
}

}  // namespace ratplus::cuda
