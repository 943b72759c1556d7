// Attention over structured key sets on the GPU. The entry points send calls with top-k block heads to their
// kernel (topk_attention.h, forward only, sequences and decoding caches), the compact decoding cache to its
// own (cache_attention.h), try the tensor-core path next (flash_attention.h: bf16, head width 64 or 128,
// whole sequences) and otherwise run the general kernel here: f32 or bf16 activations, f32 math and
// log-sum-exp, one warp per (sequence, head, query), any q_pos0 and k_len. The lanes split the head's
// channels (up to 4 each, dh ≤ 128); keys are visited range by range (kernels/attention.h), each score
// reduced across the warp, with an online softmax, so work per query is its key count and no q_len × k_len
// matrix exists. The backward recomputes probabilities from
// the saved log-sum-exp; dq stays in registers, dk and dv are added with f32 atomics (into f32 scratch
// when the activations are bf16). Per key this reads k (and v) once: 4·dh FLOPs per 8·dh bytes from cache
// or HBM, far below the tensor-core rate — it serves f32 (checking against the CPU), chunks, and the
// shapes the fast path declines. Kernels run on the call's stream; zeroing and converting the scratch
// (zero_tensor, convert) on the default stream.
#include "core/buffer.h"
#include "kernels/cuda/cache_attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/head_keys.h"
#include "kernels/cuda/topk_attention.h"

namespace ratplus::cuda {

namespace {

constexpr int kMaxPerLane = 4;  // dh ≤ 128
constexpr int kWarpsPerBlock = 4;

// The shape of a call as the kernels see it.
struct Shape {
  int64_t batch, heads, q_len, q_pos0, k_len, dh;
};

// This warp's query: sequence b, head h, query row i (position q_pos0 + i); false when past the end.
__device__ bool query_of_warp(const Shape& s, int64_t& b, int64_t& h, int64_t& i) {
  const int64_t w = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  if (w >= s.batch * s.heads * s.q_len) return false;
  i = w % s.q_len;
  h = w / s.q_len % s.heads;
  b = w / (s.q_len * s.heads);
  return true;
}

// Σ_c x[r, c0 + c] · y_c over the head's channels, spread over the warp's lanes.
template <class A>
__device__ float warp_dot(const Mat<A>& x, int64_t r, int64_t c0, const float (&y)[kMaxPerLane], int64_t dh,
                          int lane) {
  float s = 0;
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    if (c < dh) s += x(r, c0 + c) * y[n];
  }
  return warp_sum(s);
}

template <class A>
__global__ void attention_forward_kernel(Mat<A> out, Mat<float> lse, Mat<A> q, Mat<A> k, Mat<A> v, Shape s,
                                         float scale, HeadKeys head_keys) {
  int64_t b, h, i;
  if (!query_of_warp(s, b, h, i)) return;
  const int lane = threadIdx.x % 32;
  const int64_t row = b * s.q_len + i, k_base = b * s.k_len, c0 = h * s.dh;
  float qr[kMaxPerLane], acc[kMaxPerLane];
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    qr[n] = c < s.dh ? q(row, c0 + c) * scale : 0.0f;
    acc[n] = 0;
  }
  float running_max = -INFINITY, running_sum = 0;
  for_each_key(head_keys.head[h], s.q_pos0 + i, [&](int64_t j) {
    const float score = warp_dot(k, k_base + j, c0, qr, s.dh, lane);
    const float m = fmaxf(running_max, score);
    const float rescale = __expf(running_max - m), p = __expf(score - m);
    running_sum = running_sum * rescale + p;
    for (int n = 0; n < kMaxPerLane; ++n) {
      const int64_t c = lane + 32 * n;
      acc[n] = acc[n] * rescale + (c < s.dh ? p * v(k_base + j, c0 + c) : 0.0f);
    }
    running_max = m;
  });
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    if (c < s.dh) out.set(row, c0 + c, acc[n] / running_sum);
  }
  if (lane == 0) lse.set(row, h, running_max + logf(running_sum));
}

template <class A>
__global__ void attention_backward_kernel(Mat<A> dq, Mat<float> dk, Mat<float> dv, Mat<A> dout, Mat<A> q, Mat<A> k,
                                          Mat<A> v, Mat<A> out, Mat<float> lse, Shape s, float scale,
                                          HeadKeys head_keys) {
  int64_t b, h, i;
  if (!query_of_warp(s, b, h, i)) return;
  const int lane = threadIdx.x % 32;
  const int64_t row = b * s.q_len + i, k_base = b * s.k_len, c0 = h * s.dh;
  float qr[kMaxPerLane], go[kMaxPerLane], dqr[kMaxPerLane];
  float delta = 0;
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    qr[n] = c < s.dh ? q(row, c0 + c) : 0.0f;
    go[n] = c < s.dh ? dout(row, c0 + c) : 0.0f;
    delta += c < s.dh ? go[n] * out(row, c0 + c) : 0.0f;
    dqr[n] = 0;
  }
  delta = warp_sum(delta);
  const float lse_i = lse(row, h);
  for_each_key(head_keys.head[h], s.q_pos0 + i, [&](int64_t j) {
    const float p = __expf(scale * warp_dot(k, k_base + j, c0, qr, s.dh, lane) - lse_i);
    const float ds = p * (warp_dot(v, k_base + j, c0, go, s.dh, lane) - delta) * scale;
    for (int n = 0; n < kMaxPerLane; ++n) {
      const int64_t c = lane + 32 * n;
      if (c >= s.dh) continue;
      dqr[n] += ds * k(k_base + j, c0 + c);
      atomicAdd(dk.row(k_base + j) + c0 + c, ds * qr[n]);
      atomicAdd(dv.row(k_base + j) + c0 + c, p * go[n]);
    }
  });
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    if (c < s.dh) dq.set(row, c0 + c, dqr[n]);
  }
}

Shape shape_of(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  if (dh > 32 * kMaxPerLane)
    throw std::logic_error("attention (CUDA): heads of width <= " + std::to_string(32 * kMaxPerLane) +
                           " are supported, got " + std::to_string(dh));
  return {a.batch, heads, a.q_len, a.q_pos0, a.k_len, dh};
}

HeadKeys packed(std::span<const KeySet> head_keys) {
  return pack_head_keys(head_keys, [](const KeySet& s) { return s; });
}

float scale_of(const Shape& s) { return 1.0f / sqrtf(static_cast<float>(s.dh)); }

unsigned warp_blocks(int64_t warps) { return blocks_for(warps, kWarpsPerBlock); }

}  // namespace

void attention_forward(const AttentionArgs& a) {
  if (a.q.rows == 0) return;
  if (has_top_k(a)) return topk_attention_forward(a);
  if (a.key_layout == KeyLayout::cache) return cache_attention_forward(a);
  if (flash_attention_forward(a)) return;
  const Shape s = shape_of(a);
  const HeadKeys keys = packed(a.head_keys);
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    attention_forward_kernel<A><<<warp_blocks(a.q.rows * s.heads), 32 * kWarpsPerBlock, 0,
                                  attention_stream(a)>>>(
        mat<A>(a.out), mat<float>(a.lse), mat<A>(a.q), mat<A>(a.k), mat<A>(a.v), s, scale_of(s), keys);
  });
  check_launch(__func__);
}

void attention_backward(const AttentionArgs& a, const AttentionGrads& g) {
  if (a.q.rows == 0) {  // no query, so no key has a gradient
    if (g.dk.rows > 0) {
      zero_tensor(g.dk);
      zero_tensor(g.dv);
    }
    return;
  }
  if (flash_attention_backward(a, g)) return;
  const Shape s = shape_of(a);
  const HeadKeys keys = packed(a.head_keys);
  // f32 accumulators for dk and dv from the workspace when the activations are bf16.
  const bool direct = g.dk.dtype == DType::f32;
  const auto accumulator = [&](const Tensor& d, int index) {
    return Tensor{g.workspace.ptr<float>() + index * d.rows * d.cols, d.rows, d.cols, d.cols, DType::f32, Device::cuda};
  };
  const Tensor dk_acc = direct ? g.dk : accumulator(g.dk, 0);
  const Tensor dv_acc = direct ? g.dv : accumulator(g.dv, 1);
  zero_tensor(dk_acc);
  zero_tensor(dv_acc);
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    attention_backward_kernel<A><<<warp_blocks(a.q.rows * s.heads), 32 * kWarpsPerBlock, 0,
                                   attention_stream(a)>>>(
        mat<A>(g.dq), mat<float>(dk_acc), mat<float>(dv_acc), mat<A>(g.dout), mat<A>(a.q), mat<A>(a.k),
        mat<A>(a.v), mat<A>(a.out), mat<float>(a.lse), s, scale_of(s), keys);
  });
  check_launch(__func__);
  if (!direct) {
    convert(g.dk, dk_acc);
    convert(g.dv, dv_acc);
  }
}

}  // namespace ratplus::cuda
