// RMSNorm on the GPU (f32 or bf16 activations and weight, f32 math, f32 rstd and weight gradient), one
// thread block per row. Forward: each block reduces Σx² over its row (warp shuffles, then shared memory),
// then writes y = x · rstd · w; rows of 16-byte-aligned chunks, up to 8 per thread, are loaded whole (x and
// w) before the first sum, so that a row waits for device memory once — a single row (a decoding step) is
// nothing but that wait, which the strided loop of other widths pays once per 256 columns and per pass. Backward: each block reduces Σ dy·w·x over its row and writes dx; dw is
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

// The same for rows of at most kThreads · kChunks chunks of 16 bytes, each row of x, out and w starting
// 16-byte aligned: thread i holds chunks i, i + kThreads, … of x and w in registers.
template <class A, int kChunks>
__global__ void rmsnorm_forward_chunks_kernel(Mat<A> out, float* rstd, Mat<A> x, Mat<A> w, int cols, float eps) {
  constexpr int E = 16 / sizeof(A);  // elements per chunk
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  uint4 xv[kChunks], wv[kChunks];
#pragma unroll
  for (int i = 0; i < kChunks; ++i)
    if (const int c = (i * kThreads + threadIdx.x) * E; c < cols) {
      xv[i] = *reinterpret_cast<const uint4*>(x.row(r) + c);
      wv[i] = *reinterpret_cast<const uint4*>(w.row(0) + c);
    }
  float ss = 0;
#pragma unroll
  for (int i = 0; i < kChunks; ++i)
    if ((i * kThreads + threadIdx.x) * E < cols)
#pragma unroll
      for (int j = 0; j < E; ++j) {
        const float v = to_float(reinterpret_cast<const A*>(&xv[i])[j]);
        ss += v * v;
      }
  const float inv = rsqrtf(block_sum(ss, shared) / cols + eps);
  if (threadIdx.x == 0) rstd[r] = inv;
#pragma unroll
  for (int i = 0; i < kChunks; ++i)
    if (const int c = (i * kThreads + threadIdx.x) * E; c < cols) {
      uint4 y;
#pragma unroll
      for (int j = 0; j < E; ++j)
        reinterpret_cast<A*>(&y)[j] = from_float<A>(to_float(reinterpret_cast<const A*>(&xv[i])[j]) * inv *
                                                    to_float(reinterpret_cast<const A*>(&wv[i])[j]));
      *reinterpret_cast<uint4*>(out.row(r) + c) = y;
    }
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

bool chunk_aligned(const Tensor& t) {
  const int64_t e = 16 / dtype_size(t.dtype);
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && (t.rows == 1 || t.ld % e == 0);
}

template <class A>
void forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps) {
  constexpr int64_t E = 16 / sizeof(A);
  const int64_t chunks = (x.cols + E - 1) / E;
  const auto launch = [&]<int kChunks>() {
    rmsnorm_forward_chunks_kernel<A, kChunks><<<x.rows, kThreads, 0, cuda_stream()>>>(
        mat<A>(out), rstd.ptr<float>(), mat<A>(x), mat<A>(w), static_cast<int>(x.cols), static_cast<float>(eps));
  };
  if (x.cols % E != 0 || chunks > 8 * kThreads || !chunk_aligned(x) || !chunk_aligned(out) || !chunk_aligned(w)) {
    rmsnorm_forward_kernel<A><<<x.rows, kThreads, 0, cuda_stream()>>>(mat<A>(out), rstd.ptr<float>(), mat<A>(x),
                                                                      mat<A>(w), x.cols, static_cast<float>(eps));
  } else if (chunks <= kThreads) {
    launch.template operator()<1>();
  } else if (chunks <= 2 * kThreads) {
    launch.template operator()<2>();
  } else if (chunks <= 4 * kThreads) {
    launch.template operator()<4>();
  } else {
    launch.template operator()<8>();
  }
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
