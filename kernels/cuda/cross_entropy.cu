// Softmax cross-entropy on the GPU in two steps (see cross_entropy.h; f32 or bf16 logits, f32 statistics
// and losses), one block per row each: the partials pass reads a row's logits twice (max, then the sum of
// exponentials), the finish pass reads them once more and writes the gradient in place: 3 reads and 1
// write of V elements for about 5·V FLOPs per row, so both are memory-bound. The row losses of a chunk
// are added into a device total by one block.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

template <class A>
__global__ void partials_kernel(Mat<float> partials, Mat<A> logits, int64_t vocab, const int32_t* targets,
                                int64_t vocab_begin) {
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) mx = fmaxf(mx, logits(r, c));
  mx = block_max(mx, shared);
  float sum = 0;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) sum += __expf(logits(r, c) - mx);
  sum = block_sum(sum, shared);
  if (threadIdx.x != 0) return;
  partials.set(0, r, logf(sum) + mx);
  const int64_t local = static_cast<int64_t>(targets[r]) - vocab_begin;
  partials.set(1, r, targets[r] >= 0 && local >= 0 && local < vocab ? logits(r, local) : 0.0f);
}

template <class A>
__global__ void finish_kernel(float* row_loss, Mat<A> logits, int64_t vocab, const int32_t* targets,
                              int64_t vocab_begin, Mat<float> partials, int slices, float grad_scale) {
  const int64_t r = blockIdx.x;
  const int32_t target = targets[r];
  if (target < 0) {
    if (threadIdx.x == 0) row_loss[r] = 0;
    if (grad_scale != 0)
      for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) logits.set(r, c, 0.0f);
    return;
  }
  float mx = partials(0, r), sum = 0, target_logit = 0;
  for (int s = 1; s < slices; ++s) mx = fmaxf(mx, partials(2 * s, r));
  for (int s = 0; s < slices; ++s) {
    sum += __expf(partials(2 * s, r) - mx);
    target_logit += partials(2 * s + 1, r);
  }
  const float log_sum = logf(sum) + mx;
  if (threadIdx.x == 0) row_loss[r] = log_sum - target_logit;
  if (grad_scale == 0) return;
  const int64_t local = target - vocab_begin;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
    logits.set(r, c, grad_scale * (__expf(logits(r, c) - log_sum) - (c == local ? 1.0f : 0.0f)));
}

// One block: each thread sums a strided set of rows in double, then a tree over the block, in a fixed order.
__global__ void accumulate_loss_kernel(double* total, const float* row_loss, int64_t n) {
  __shared__ double partial[kThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += row_loss[i];
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *total += partial[0];
}

}  // namespace

void cross_entropy_partials(Tensor partials, const Tensor& logits, const int32_t* targets, int64_t vocab_begin) {
  if (logits.rows == 0) return;
  with_activation_type(logits.dtype, __func__, [&]<class A>() {
    partials_kernel<A><<<static_cast<unsigned>(logits.rows), kThreads, 0, cuda_stream()>>>(
        mat<float>(partials), mat<A>(logits), logits.cols, targets, vocab_begin);
  });
  check_launch(__func__);
}

void cross_entropy_finish(Tensor row_loss, Tensor logits, const int32_t* targets, int64_t vocab_begin,
                          const Tensor& partials, double grad_scale) {
  if (logits.rows == 0) return;
  with_activation_type(logits.dtype, __func__, [&]<class A>() {
    finish_kernel<A><<<static_cast<unsigned>(logits.rows), kThreads, 0, cuda_stream()>>>(
        row_loss.ptr<float>(), mat<A>(logits), logits.cols, targets, vocab_begin, mat<float>(partials),
        static_cast<int>(partials.rows / 2), static_cast<float>(grad_scale));
  });
  check_launch(__func__);
}

void accumulate_loss(Tensor total, const Tensor& row_loss) {
  accumulate_loss_kernel<<<1, kThreads, 0, cuda_stream()>>>(total.ptr<double>(), row_loss.ptr<float>(), row_loss.cols);
  check_launch(__func__);
}

}  // namespace ratplus::cuda
