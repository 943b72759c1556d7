// Attention over structured key sets on the GPU. The entry points try the tensor-core path first
// (flash_attention.cu: bf16, head width 64 or 128) and otherwise run the general kernel here: f32 or bf16
// activations, f32 math and log-sum-exp, one warp per (sequence, head, query). The lanes split the head's
// channels (up to 4 each, dh ≤ 128); keys are visited range by range (kernels/attention.h), each score
// reduced across the warp, with an online softmax, so work per query is its key count and no T × T matrix
// exists. The backward recomputes probabilities from the saved log-sum-exp; dq stays in registers, dk and
// dv are added with f32 atomics (into f32 scratch when the activations are bf16). Per key this reads k
// (and v) once: 4·dh FLOPs per 8·dh bytes from cache or HBM, far below the tensor-core rate — it serves
// f32 (checking against the CPU) and the shapes the fast path declines.
#include "core/buffer.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/flash_attention.h"

namespace ratplus::cuda {

namespace {

constexpr int kMaxHeads = 128;
constexpr int kMaxPerLane = 4;  // dh ≤ 128
constexpr int kWarpsPerBlock = 4;

struct HeadKeys {
  KeySet keys[kMaxHeads];
};


// Identifies this warp's query; false when past the end.
__device__ bool query_of_warp(int64_t batch, int64_t heads, int64_t seq, int64_t& b, int64_t& h, int64_t& t) {
  const int64_t w = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  if (w >= batch * heads * seq) return false;
  t = w % seq;
  h = w / seq % heads;
  b = w / (seq * heads);
  return true;
}

// Σ_c x[r, c0 + c] · y_c over the head's channels, spread over the warp's lanes.
template <class A>
__device__ float warp_dot(const Mat<A>& x, int64_t r, int64_t c0, const float (&y)[kMaxPerLane], int64_t dh,
                          int lane) {
  float s = 0;
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    if (c < dh) s += x(r, c0 + c) * y[i];
  }
  return warp_sum(s);
}

template <class F>
__device__ void for_each_key(const KeySet& keys, int64_t t, F&& f) {
  KeyRange ranges[3];
  const int n = key_ranges(keys, t, ranges);
  for (int i = 0; i < n; ++i)
    for (int64_t j = ranges[i].begin; j < ranges[i].end; j += ranges[i].step) f(j);
}

template <class A>
__global__ void attention_forward_kernel(Mat<A> out, Mat<float> lse, Mat<A> q, Mat<A> k, Mat<A> v, int64_t batch,
                                         int64_t heads, int64_t seq, int64_t dh, float scale, HeadKeys head_keys) {
  int64_t b, h, t;
  if (!query_of_warp(batch, heads, seq, b, h, t)) return;
  const int lane = threadIdx.x % 32;
  const int64_t base = b * seq, c0 = h * dh;
  float qr[kMaxPerLane], acc[kMaxPerLane];
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    qr[i] = c < dh ? q(base + t, c0 + c) * scale : 0.0f;
    acc[i] = 0;
  }
  float running_max = -INFINITY, running_sum = 0;
  for_each_key(head_keys.keys[h], t, [&](int64_t j) {
    const float s = warp_dot(k, base + j, c0, qr, dh, lane);
    const float m = fmaxf(running_max, s);
    const float rescale = __expf(running_max - m), p = __expf(s - m);
    running_sum = running_sum * rescale + p;
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int64_t c = lane + 32 * i;
      acc[i] = acc[i] * rescale + (c < dh ? p * v(base + j, c0 + c) : 0.0f);
    }
    running_max = m;
  });
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    if (c < dh) out.set(base + t, c0 + c, acc[i] / running_sum);
  }
  if (lane == 0) lse.set(base + t, h, running_max + logf(running_sum));
}

template <class A>
__global__ void attention_backward_kernel(Mat<A> dq, Mat<float> dk, Mat<float> dv, Mat<A> dout, Mat<A> q, Mat<A> k,
                                          Mat<A> v, Mat<A> out, Mat<float> lse, int64_t batch, int64_t heads,
                                          int64_t seq, int64_t dh, float scale, HeadKeys head_keys) {
  int64_t b, h, t;
  if (!query_of_warp(batch, heads, seq, b, h, t)) return;
  const int lane = threadIdx.x % 32;
  const int64_t base = b * seq, c0 = h * dh;
  float qr[kMaxPerLane], go[kMaxPerLane], dqr[kMaxPerLane];
  float delta = 0;
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    qr[i] = c < dh ? q(base + t, c0 + c) : 0.0f;
    go[i] = c < dh ? dout(base + t, c0 + c) : 0.0f;
    delta += c < dh ? go[i] * out(base + t, c0 + c) : 0.0f;
    dqr[i] = 0;
  }
  delta = warp_sum(delta);
  const float lse_t = lse(base + t, h);
  for_each_key(head_keys.keys[h], t, [&](int64_t j) {
    const float p = __expf(scale * warp_dot(k, base + j, c0, qr, dh, lane) - lse_t);
    const float ds = p * (warp_dot(v, base + j, c0, go, dh, lane) - delta) * scale;
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int64_t c = lane + 32 * i;
      if (c >= dh) continue;
      dqr[i] += ds * k(base + j, c0 + c);
      atomicAdd(dk.row(base + j) + c0 + c, ds * qr[i]);
      atomicAdd(dv.row(base + j) + c0 + c, p * go[i]);
    }
  });
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    if (c < dh) dq.set(base + t, c0 + c, dqr[i]);
  }
}

// f32 accumulators for dk and dv when the activations are bf16; grows to the largest request and is kept.
struct Scratch {
  void* data = nullptr;
  size_t bytes = 0;
  Tensor get(int64_t rows, int64_t cols, int index) {
    const size_t need = static_cast<size_t>(rows * cols) * 4 * 2;
    if (need > bytes) {
      if (data) cudaFree(data);
      check(cudaMalloc(&data, need), "cudaMalloc (attention scratch)");
      bytes = need;
    }
    return Tensor{static_cast<float*>(data) + index * rows * cols, rows, cols, cols, DType::f32, Device::cuda};
  }
};

HeadKeys pack(std::span<const KeySet> head_keys, int64_t dh) {
  if (head_keys.size() > kMaxHeads || dh > 32 * kMaxPerLane)
    throw std::logic_error("attention (CUDA): at most " + std::to_string(kMaxHeads) + " heads of width <= " +
                           std::to_string(32 * kMaxPerLane) + " are supported");
  HeadKeys packed{};
  for (size_t i = 0; i < head_keys.size(); ++i) packed.keys[i] = head_keys[i];
  return packed;
}

unsigned warp_blocks(int64_t warps) { return blocks_for(warps, kWarpsPerBlock); }

}  // namespace

void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch,
                       std::span<const KeySet> head_keys) {
  require_f32(lse, __func__);
  const int64_t heads = static_cast<int64_t>(head_keys.size()), dh = q.cols / heads, seq = q.rows / batch;
  if (q.rows == 0 || flash_attention_forward(out, lse, q, k, v, batch, head_keys)) return;
  const HeadKeys packed = pack(head_keys, dh);
  with_activation_type(q.dtype, __func__, [&]<class A>() {
    attention_forward_kernel<A><<<warp_blocks(q.rows * heads), 32 * kWarpsPerBlock, 0, cuda_stream()>>>(
        mat<A>(out), mat<float>(lse), mat<A>(q), mat<A>(k), mat<A>(v), batch, heads, seq, dh,
        1.0f / sqrtf(static_cast<float>(dh)), packed);
  });
  check_launch(__func__);
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, int64_t batch,
                        std::span<const KeySet> head_keys) {
  const int64_t heads = static_cast<int64_t>(head_keys.size()), dh = q.cols / heads, seq = q.rows / batch;
  if (q.rows == 0 || flash_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, batch, head_keys)) return;
  static Scratch scratch;
  const bool direct = dk.dtype == DType::f32;
  const Tensor dk_acc = direct ? dk : scratch.get(dk.rows, dk.cols, 0);
  const Tensor dv_acc = direct ? dv : scratch.get(dv.rows, dv.cols, 1);
  zero_tensor(dk_acc);
  zero_tensor(dv_acc);
  const HeadKeys packed = pack(head_keys, dh);
  with_activation_type(q.dtype, __func__, [&]<class A>() {
    attention_backward_kernel<A><<<warp_blocks(q.rows * heads), 32 * kWarpsPerBlock, 0, cuda_stream()>>>(
        mat<A>(dq), mat<float>(dk_acc), mat<float>(dv_acc), mat<A>(dout), mat<A>(q), mat<A>(k), mat<A>(v),
        mat<A>(out), mat<float>(lse), batch, heads, seq, dh, 1.0f / sqrtf(static_cast<float>(dh)), packed);
  });
  check_launch(__func__);
  if (!direct) {
    convert(dk, dk_acc);
    convert(dv, dv_acc);
  }
}

}  // namespace ratplus::cuda
