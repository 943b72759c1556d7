// Shared pieces of the CUDA kernels: error checks, the stream (gpu_context.h), launch sizes, warp and block reductions, element types.
// Activations are f32 or bf16 (`A` in the kernels; math is always f32), statistics (rstd, log-sum-exp,
// row losses) and weight gradients are f32. Messages are built without fmt, whose compile-time format
// checks nvcc cannot evaluate.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdexcept>
#include <string>

#include "core/tensor.h"
#include "kernels/cuda/gpu_context.h"

namespace ratplus::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Checks the launch that just happened.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline void require_f32(const Tensor& t, const char* op) {
  if (t.dtype != DType::f32) throw std::logic_error(std::string(op) + ": the CUDA kernel takes f32 tensors here");
}

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(int8_t x) { return static_cast<float>(x); }
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16(x); }

// x on the 8-bit grid of scale s = (the largest |x| of its head) / 127: round(x / s) to even, within ±127
// (0 where s is 0), as the CPU's quantize_to_int8 computes it in f32.
__device__ __forceinline__ int8_t to_int8_grid(float x, float s) {
  return s == 0.0f ? 0 : static_cast<int8_t>(fminf(fmaxf(rintf(__fdiv_rn(x, s)), -127.0f), 127.0f));
}

// Exact GELU: x · Φ(x) = 0.5 x (1 + erf(x / √2)).
__device__ __forceinline__ float gelu_of(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

// Calls f.template operator()<A>() with A = float or bf16 according to the activation dtype.
template <class F>
void with_activation_type(DType t, const char* op, F&& f) {
  if (t == DType::f32) {
    f.template operator()<float>();
  } else if (t == DType::bf16) {
    f.template operator()<bf16>();
  } else {
    throw std::logic_error(std::string(op) + ": the CUDA kernels take f32 or bf16 activations");
  }
}

// A strided matrix of element type T as the kernels see it: load and store in f32.
template <class T>
struct Mat {
  T* p;
  int64_t ld;
  __device__ float operator()(int64_t r, int64_t c) const { return to_float(p[r * ld + c]); }
  __device__ void set(int64_t r, int64_t c, float v) const { p[r * ld + c] = from_float<T>(v); }
  __device__ T* row(int64_t r) const { return p + r * ld; }
};

template <class T>
Mat<T> mat(const Tensor& t) {
  return {static_cast<T*>(t.data), t.ld};
}

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `shared` holds 32 floats.
__device__ inline float block_sum(float v, float* shared) {
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.0f;
  if (warp == 0) v = warp_sum(v);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}

__device__ inline float block_max(float v, float* shared) {
  v = warp_max(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : -INFINITY;
  if (warp == 0) v = warp_max(v);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}

}  // namespace ratplus::cuda
