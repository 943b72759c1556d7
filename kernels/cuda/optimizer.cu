// AdamW and the sum of squares on the GPU. AdamW is one thread per parameter (f32 master weights and
// moments, optionally refreshing the bf16 weight copy): it reads p, g, m, v and writes p, m, v (and the
// copy) — 28–30 bytes for ~15 FLOPs, memory-bound. The sum of
// squares reduces fixed grid-stride slices per block into per-block partials (in the context's scratch)
// that the host adds in block order, so the result is deterministic.
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kReduceBlocks = GpuContext::reduction_slots();

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, bf16* copy, int64_t n, float lr,
                             float beta1, float beta2, float eps, float decay, float grad_scale, float c1, float c2) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float gi = grad_scale * g[i];
  const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
  const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  const float pi = p[i] * decay - lr * (mi / c1) / (sqrtf(vi / c2) + eps);
  p[i] = pi;
  if (copy) copy[i] = __float2bfloat16(pi);
}

__global__ void sum_of_squares_kernel(const float* x, int64_t n, double* partial) {
  __shared__ float shared[32];
  float s = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    s += x[i] * x[i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

}  // namespace

void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, const AdamWStep& s, Tensor params_copy) {
  const int64_t n = params.numel();
  if (n == 0) return;
  const double c1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.t));
  const double c2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.t));
  adamw_kernel<<<blocks_for(n, kThreads), kThreads, 0, cuda_stream()>>>(
      params.ptr<float>(), grads.ptr<float>(), m.ptr<float>(), v.ptr<float>(), params_copy.ptr<bf16>(), n,
      static_cast<float>(s.lr), static_cast<float>(s.beta1), static_cast<float>(s.beta2), static_cast<float>(s.eps),
      static_cast<float>(1.0 - s.lr * s.weight_decay), static_cast<float>(s.grad_scale), static_cast<float>(c1),
      static_cast<float>(c2));
  check_launch(__func__);
}

double sum_of_squares(const Tensor& x) {
  GpuContext& context = gpu_context();
  double* partial = context.reduction_partials();
  sum_of_squares_kernel<<<kReduceBlocks, kThreads, 0, context.stream()>>>(x.ptr<float>(), x.numel(), partial);
  check_launch("sum_of_squares_kernel");
  std::vector<double> host(kReduceBlocks);
  check(cudaMemcpyAsync(host.data(), partial, host.size() * sizeof(double), cudaMemcpyDeviceToHost, context.stream()),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(context.stream()), "cudaStreamSynchronize");
  double total = 0;
  for (double p : host) total += p;
  return total;
}

}  // namespace ratplus::cuda
