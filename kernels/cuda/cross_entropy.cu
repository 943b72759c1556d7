// Fused softmax cross-entropy on the GPU (f32 or bf16 logits, f32 math and losses): one block per row
// makes three passes over the row's logits (max, sum of exponentials, gradient written in place), so a row
// of V logits is read three times and written once for about 5·V FLOPs: memory-bound.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

template <class A>
__global__ void cross_entropy_kernel(float* row_loss, Mat<A> logits, int64_t vocab, const int32_t* targets,
                                     float grad_scale) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const int32_t target = targets[blockIdx.x];
  if (target < 0) {
    if (threadIdx.x == 0) row_loss[r] = 0;
    if (grad_scale != 0)
      for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) logits.set(r, c, 0.0f);
    return;
  }
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) mx = fmaxf(mx, logits(r, c));
  mx = block_max(mx, shared);
  float sum = 0;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) sum += __expf(logits(r, c) - mx);
  const float log_sum = logf(block_sum(sum, shared)) + mx;
  const float z_target = logits(r, target);
  __syncthreads();  // every thread has read z[target] before it is overwritten
  if (threadIdx.x == 0) row_loss[r] = log_sum - z_target;
  if (grad_scale == 0) return;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
    logits.set(r, c, grad_scale * (__expf(logits(r, c) - log_sum) - (c == target ? 1.0f : 0.0f)));
}

}  // namespace

void cross_entropy(Tensor row_loss, Tensor logits, const int32_t* targets, double grad_scale) {
  require_f32(row_loss, __func__);
  if (logits.rows == 0) return;
  with_activation_type(logits.dtype, __func__, [&]<class A>() {
    cross_entropy_kernel<A><<<static_cast<unsigned>(logits.rows), kThreads>>>(
        row_loss.ptr<float>(), mat<A>(logits), logits.cols, targets, static_cast<float>(grad_scale));
  });
  check_launch(__func__);
}

}  // namespace ratplus::cuda
