// Attention over structured key sets on the GPU (f32), the straightforward form: one warp per
// (sequence, head, query). The lanes split the head's channels (up to 4 each, dh ≤ 128); keys are visited
// range by range (kernels/attention.h), each score reduced across the warp, with an online softmax, so
// work per query is its key count and no T × T matrix exists. The backward recomputes probabilities from
// the saved log-sum-exp; dq stays in registers, dk and dv are added with atomics. Per key this reads
// k (and v) once: 4·dh FLOPs per 8·dh bytes from cache or HBM, so it runs far below the tensor-core
// rate; the tiled tensor-core kernel is the next step. It is the reference the tiled kernel is tested against.
#include "core/buffer.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kMaxHeads = 128;
constexpr int kMaxPerLane = 4;  // dh ≤ 128
constexpr int kWarpsPerBlock = 4;

struct HeadKeys {
  KeySet keys[kMaxHeads];
};

struct Rows {
  float* p;
  int64_t ld;
  __device__ float* row(int64_t r) const { return p + r * ld; }
};

Rows rows(const Tensor& t) { return {t.ptr<float>(), t.ld}; }

// Identifies this warp's query; false when past the end.
__device__ bool query_of_warp(int64_t batch, int64_t heads, int64_t seq, int64_t& b, int64_t& h, int64_t& t) {
  const int64_t w = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  if (w >= batch * heads * seq) return false;
  t = w % seq;
  h = w / seq % heads;
  b = w / (seq * heads);
  return true;
}

__device__ float warp_dot(const float* x, const float (&y)[kMaxPerLane], int64_t dh, int lane) {
  float s = 0;
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    if (c < dh) s += x[c] * y[i];
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

__global__ void attention_forward_kernel(Rows out, Rows lse, Rows q, Rows k, Rows v, int64_t batch, int64_t heads,
                                         int64_t seq, int64_t dh, float scale, HeadKeys head_keys) {
  int64_t b, h, t;
  if (!query_of_warp(batch, heads, seq, b, h, t)) return;
  const int lane = threadIdx.x % 32;
  const int64_t base = b * seq;
  float qr[kMaxPerLane], acc[kMaxPerLane];
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    qr[i] = c < dh ? q.row(base + t)[h * dh + c] * scale : 0.0f;
    acc[i] = 0;
  }
  float running_max = -INFINITY, running_sum = 0;
  for_each_key(head_keys.keys[h], t, [&](int64_t j) {
    const float s = warp_dot(k.row(base + j) + h * dh, qr, dh, lane);
    const float m = fmaxf(running_max, s);
    const float rescale = __expf(running_max - m), p = __expf(s - m);
    running_sum = running_sum * rescale + p;
    const float* vj = v.row(base + j) + h * dh;
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int64_t c = lane + 32 * i;
      acc[i] = acc[i] * rescale + (c < dh ? p * vj[c] : 0.0f);
    }
    running_max = m;
  });
  float* o = out.row(base + t) + h * dh;
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    if (c < dh) o[c] = acc[i] / running_sum;
  }
  if (lane == 0) lse.row(base + t)[h] = running_max + logf(running_sum);
}

__global__ void attention_backward_kernel(Rows dq, Rows dk, Rows dv, Rows dout, Rows q, Rows k, Rows v, Rows out,
                                          Rows lse, int64_t batch, int64_t heads, int64_t seq, int64_t dh, float scale,
                                          HeadKeys head_keys) {
  int64_t b, h, t;
  if (!query_of_warp(batch, heads, seq, b, h, t)) return;
  const int lane = threadIdx.x % 32;
  const int64_t base = b * seq;
  float qr[kMaxPerLane], go[kMaxPerLane], dqr[kMaxPerLane];
  float delta = 0;
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    qr[i] = c < dh ? q.row(base + t)[h * dh + c] : 0.0f;
    go[i] = c < dh ? dout.row(base + t)[h * dh + c] : 0.0f;
    delta += c < dh ? go[i] * out.row(base + t)[h * dh + c] : 0.0f;
    dqr[i] = 0;
  }
  delta = warp_sum(delta);
  const float lse_t = lse.row(base + t)[h];
  for_each_key(head_keys.keys[h], t, [&](int64_t j) {
    const float* kj = k.row(base + j) + h * dh;
    const float p = __expf(scale * warp_dot(kj, qr, dh, lane) - lse_t);
    const float ds = p * (warp_dot(v.row(base + j) + h * dh, go, dh, lane) - delta) * scale;
    float* dkj = dk.row(base + j) + h * dh;
    float* dvj = dv.row(base + j) + h * dh;
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int64_t c = lane + 32 * i;
      if (c >= dh) continue;
      dqr[i] += ds * kj[c];
      atomicAdd(dkj + c, ds * qr[i]);
      atomicAdd(dvj + c, p * go[i]);
    }
  });
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int64_t c = lane + 32 * i;
    if (c < dh) dq.row(base + t)[h * dh + c] = dqr[i];
  }
}

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
  require_f32(q, __func__);
  const int64_t heads = static_cast<int64_t>(head_keys.size()), dh = q.cols / heads, seq = q.rows / batch;
  if (q.rows == 0) return;
  attention_forward_kernel<<<warp_blocks(q.rows * heads), 32 * kWarpsPerBlock>>>(
      rows(out), rows(lse), rows(q), rows(k), rows(v), batch, heads, seq, dh, 1.0f / sqrtf(static_cast<float>(dh)),
      pack(head_keys, dh));
  check_launch(__func__);
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, int64_t batch,
                        std::span<const KeySet> head_keys) {
  require_f32(q, __func__);
  const int64_t heads = static_cast<int64_t>(head_keys.size()), dh = q.cols / heads, seq = q.rows / batch;
  if (q.rows == 0) return;
  zero_tensor(dk);
  zero_tensor(dv);
  attention_backward_kernel<<<warp_blocks(q.rows * heads), 32 * kWarpsPerBlock>>>(
      rows(dq), rows(dk), rows(dv), rows(dout), rows(q), rows(k), rows(v), rows(out), rows(lse), batch, heads, seq, dh,
      1.0f / sqrtf(static_cast<float>(dh)), pack(head_keys, dh));
  check_launch(__func__);
}

}  // namespace ratplus::cuda
