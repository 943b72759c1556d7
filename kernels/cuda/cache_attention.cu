// Attention of one query per sequence over a compact decoding cache (KeyLayout::cache), flash-decoding
// style. Grid: (run, head, sequence), a run being kCacheSplitSlots consecutive slots; 128 threads.
//   1. scores: a group of G lanes holds one key — each lane 16 bytes (8 bf16 or 4 f32 channels), G = dh
//      over that — so a warp takes 32 / G keys per load and four such loads are in flight before the dot
//      products are reduced across the group. A slot whose position is outside the query's key set (empty,
//      stale in the ring, or beyond the query) is not read and scores −∞. Scores go to shared memory.
//   2. the run's maximum and the exponentials, in shared memory;
//   3. values: the same groups accumulate p·v in f32 over their keys (skipping p = 0), then the groups of a
//      warp and the warps of the block are summed.
//   With one run the block writes out = Σ p·v / Σ p and lse; otherwise it writes the unnormalised sum, its
//   maximum and its sum to the workspace, and a merge kernel (one block per sequence and head) rescales
//   the runs to their common maximum and normalises.
// Bytes: each attended key and value is read once (2·dh·2 B in bf16) plus its 4-byte position; per key
// 4·dh FLOPs, about 1 FLOP per byte, so the kernel is bound by HBM bandwidth: the goal is the cache's size
// divided by 4.3 TB/s. Parallelism is batch × heads × runs blocks (16 × 32 = 512 at batch 1, dense T 16384;
// 32,768 at batch 2048, dilated(64)), several per SM with ~6 KiB of shared memory each.
// Needs 16-byte aligned rows and a head width of G · 16 / sizeof(element) with G a power of two ≤ 32.
#include <string>

#include "kernels/cuda/cache_attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/head_keys.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32;
constexpr int kUnroll = 4;       // keys each group loads before reducing
constexpr int kMaxWidth = 256;   // channels of a head

// 16 bytes of A: 8 bf16 or 4 f32, as f32.
template <class A>
struct Chunk {
  static constexpr int n = 16 / sizeof(A);
  float x[n];
  __device__ void load(const A* p) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const A* e = reinterpret_cast<const A*>(&raw);
#pragma unroll
    for (int i = 0; i < n; ++i) x[i] = to_float(e[i]);
  }
};

template <class A, int G>
__global__ void __launch_bounds__(kThreads) cache_attention_kernel(Mat<A> out, Mat<float> lse, Mat<A> q, Mat<A> k,
                                                                   Mat<A> v, const int32_t* key_positions,
                                                                   const int32_t* query_positions, int k_len,
                                                                   int dh, float scale, HeadKeys head_keys,
                                                                   float* partials) {
  constexpr int E = Chunk<A>::n, groups = 32 / G;
  __shared__ float p[kCacheSplitSlots];
  __shared__ float sums[kWarps][kMaxWidth];
  __shared__ float reduce[32];
  const int runs = gridDim.x, run = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, group = lane / G, e = lane % G;
  const int begin = run * static_cast<int>(kCacheSplitSlots), end = min(k_len, begin + static_cast<int>(kCacheSplitSlots));
  const int64_t row0 = static_cast<int64_t>(b) * k_len, c0 = static_cast<int64_t>(h) * dh + e * E;
  const int32_t* positions = key_positions + row0;
  const int64_t t = query_positions[b];
  const KeySet keys = head_keys.head[h];
  Chunk<A> qc;
  qc.load(q.row(b) + c0);
  for (int i = 0; i < E; ++i) qc.x[i] *= scale;

  // 1. scores
  constexpr int stride = kWarps * groups;
  for (int base = begin + warp * groups; base < end; base += stride * kUnroll) {  // uniform over the warp
    const int s0 = base + group;
    Chunk<A> kc[kUnroll];
    bool live[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int s = s0 + u * stride;
      live[u] = s < end && in_key_set(keys, t, positions[min(s, end - 1)]);
      if (live[u]) kc[u].load(k.row(row0 + s) + c0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float dot = 0;
#pragma unroll
      for (int i = 0; i < E; ++i) dot += live[u] ? qc.x[i] * kc[u].x[i] : 0.0f;
#pragma unroll
      for (int o = 1; o < G; o <<= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      const int s = s0 + u * stride;
      if (e == 0 && s < end) p[s - begin] = live[u] ? dot : -INFINITY;
    }
  }
  __syncthreads();

  // 2. the run's maximum and exponentials
  float m = -INFINITY;
  for (int s = threadIdx.x; s < end - begin; s += kThreads) m = fmaxf(m, p[s]);
  m = block_max(m, reduce);
  float l = 0;
  for (int s = threadIdx.x; s < end - begin; s += kThreads) {
    const float x = m == -INFINITY ? 0.0f : __expf(p[s] - m);
    p[s] = x;
    l += x;
  }
  l = block_sum(l, reduce);  // its barriers also publish p

  // 3. values
  float acc[E] = {};
  for (int base = begin + warp * groups; base < end; base += stride * kUnroll) {
    const int s0 = base + group;
    Chunk<A> vc[kUnroll];
    float w[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int s = s0 + u * stride;
      w[u] = s < end ? p[s - begin] : 0.0f;
      if (w[u] != 0.0f) vc[u].load(v.row(row0 + s) + c0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int i = 0; i < E; ++i) acc[i] += w[u] != 0.0f ? w[u] * vc[u].x[i] : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < E; ++i)
#pragma unroll
    for (int o = G; o < 32; o <<= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
  if (group == 0)
    for (int i = 0; i < E; ++i) sums[warp][e * E + i] = acc[i];
  __syncthreads();
  for (int c = threadIdx.x; c < dh; c += kThreads) {
    float sum = 0;
    for (int w = 0; w < kWarps; ++w) sum += sums[w][c];
    if (runs == 1) {
      out.set(b, static_cast<int64_t>(h) * dh + c, sum / l);
    } else {
      partials[((static_cast<int64_t>(b) * gridDim.y + h) * runs + run) * (dh + 2) + c] = sum;
    }
  }
  if (threadIdx.x == 0) {
    if (runs == 1) {
      lse.set(b, h, m + logf(l));
    } else {
      float* stats = partials + ((static_cast<int64_t>(b) * gridDim.y + h) * runs + run) * (dh + 2) + dh;
      stats[0] = m;
      stats[1] = l;
    }
  }
}

// One block per (head, sequence): the runs' partial results rescaled to their common maximum and summed.
template <class A>
__global__ void merge_runs_kernel(Mat<A> out, Mat<float> lse, const float* partials, int runs, int dh) {
  const int h = blockIdx.x, b = blockIdx.y;
  const float* base = partials + (static_cast<int64_t>(b) * gridDim.x + h) * runs * (dh + 2);
  float m = -INFINITY;
  for (int r = 0; r < runs; ++r) m = fmaxf(m, base[r * (dh + 2) + dh]);
  float l = 0;
  for (int r = 0; r < runs; ++r) {
    const float* stats = base + r * (dh + 2) + dh;
    l += stats[1] == 0.0f ? 0.0f : stats[1] * __expf(stats[0] - m);
  }
  for (int c = threadIdx.x; c < dh; c += blockDim.x) {
    float sum = 0;
    for (int r = 0; r < runs; ++r) {
      const float* stats = base + r * (dh + 2) + dh;
      if (stats[1] != 0.0f) sum += base[r * (dh + 2) + c] * __expf(stats[0] - m);
    }
    out.set(b, static_cast<int64_t>(h) * dh + c, sum / l);
  }
  if (threadIdx.x == 0) lse.set(b, h, m + logf(l));
}

bool aligned(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.ld * dtype_size(t.dtype) % 16 == 0;
}

template <class A, int G>
void launch(const AttentionArgs& a, int dh, int runs, const HeadKeys& keys) {
  const dim3 grid(runs, static_cast<unsigned>(a.head_keys.size()), static_cast<unsigned>(a.batch));
  float* partials = runs > 1 ? a.workspace.ptr<float>() : nullptr;
  cache_attention_kernel<A, G><<<grid, kThreads, 0, attention_stream(a)>>>(
      mat<A>(a.out), mat<float>(a.lse), mat<A>(a.q), mat<A>(a.k), mat<A>(a.v), a.key_positions, a.query_positions,
      static_cast<int>(a.k_len), dh, 1.0f / sqrtf(static_cast<float>(dh)), keys, partials);
  check_launch("cache_attention_kernel");
  if (runs > 1) {
    merge_runs_kernel<A><<<dim3(grid.y, grid.z), kThreads, 0, attention_stream(a)>>>(mat<A>(a.out), mat<float>(a.lse),
                                                                                    partials, runs, dh);
    check_launch("merge_runs_kernel");
  }
}

}  // namespace

void cache_attention_forward(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  const int64_t per_chunk = 16 / static_cast<int64_t>(dtype_size(a.q.dtype)), lanes = dh / per_chunk;
  const bool shape_ok = dh <= kMaxWidth && dh % per_chunk == 0 && lanes >= 1 && lanes <= 32 && (lanes & (lanes - 1)) == 0;
  if (!shape_ok || !aligned(a.q) || !aligned(a.k) || !aligned(a.v) || a.k_len >= (int64_t(1) << 31))
    throw std::logic_error("attention (CUDA cache): heads of width " + std::to_string(dh) +
                           " or rows not 16-byte aligned; the kernel takes 16-byte aligned rows and widths of 16 B "
                           "times a power of two up to 32");
  const int runs = static_cast<int>((a.k_len + kCacheSplitSlots - 1) / kCacheSplitSlots);
  const HeadKeys keys = pack_head_keys(a.head_keys, [](const KeySet& s) { return s; });
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    switch (lanes) {
      case 1: return launch<A, 1>(a, static_cast<int>(dh), runs, keys);
      case 2: return launch<A, 2>(a, static_cast<int>(dh), runs, keys);
      case 4: return launch<A, 4>(a, static_cast<int>(dh), runs, keys);
      case 8: return launch<A, 8>(a, static_cast<int>(dh), runs, keys);
      case 16: return launch<A, 16>(a, static_cast<int>(dh), runs, keys);
      default: return launch<A, 32>(a, static_cast<int>(dh), runs, keys);
    }
  });
}

}  // namespace ratplus::cuda
