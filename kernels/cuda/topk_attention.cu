// Top-k block attention on the GPU (topk_attention.h), on the call's stream.
//   1. Block summaries, for a sequence-layout call only (a decoding cache keeps its own, into which
//      cache_append.cu folds each key as it stores it): one thread per (sequence, head, complete block,
//      channel) folds the block's B keys in position order (quest: minimum and maximum, moba: sum;
//      fold_value of kernels/cpu/topk_blocks.h) into f32 scratch of batch · H · ⌊k_len / B_min⌋ · 2·dh
//      floats (B_min the smallest B of the call) taken from CUDA's stream-ordered pool for the call
//      (cudaMallocAsync, outside the model's memory plan: a few MB at eval sizes).
//   2. Attention: one warp per (sequence, head, query t), as the general kernel of attention.cu. A top-k
//      head scores its earlier blocks b < ⌊t/B⌋ (lane = block, channels in order: block_score of
//      topk_blocks.h, so f32 scores equal the CPU's to the bit), keeps each score's order key (NaN as −∞,
//      −0 as +0) in shared memory, finds the K-th largest key bit by bit (32 counting passes) and chooses
//      the blocks above it plus, of those equal to it, the lowest ones (ties to the lower block, as SPEC
//      §6); with K ≥ ⌊t/B⌋ every earlier block is chosen unscored. It then attends with an online softmax
//      over the fixed key set (local W, sinks P, dilated D) minus the chosen blocks, followed by the own and
//      chosen blocks, so each key counts once; lanes split the channels (up to 4 each) and each score is
//      reduced across the warp. Other heads attend to their fixed key sets alone.
// A decoding step over a top-k cache (slot j holds position j) chooses the blocks the same way, one warp per
// (sequence, head), but instead of attending writes the head's selection — each slot's position if the query
// attends to it, else −1 — and hands it to the cache kernel (cache_attention.cu), which attends over the
// selected slots split into runs across the GPU, reading only their keys and values.
// Work: the summaries of a sequence read every key once (batch · k_len · H · dh elements). Per query,
// scoring reads ⌊t/B⌋ summaries of width · 4 bytes (shared by the head's queries in L2) for 3·dh to 4·dh
// FLOPs each, the selection makes 33 passes over ⌊t/B⌋ shared words, and attention reads k and v once per
// attended key (about (K + 1)·B + W + P + t/D keys) for 4·dh FLOPs per 2·dh elements, as the general
// kernel: scalar math, far below the tensor cores; long sequences with small B spend their time scoring
// (serial in dh per lane). A decoding step reads ⌊t/B⌋ summaries per head, writes and reads 4 B of selection
// per slot, and the selected keys and values once; its selection, one warp per (sequence, head), is what it
// waits on (docs/PERFORMANCE.md). Limits: head width ≤ 128, f32 or bf16 activations (f32 math and lse), at
// most kMaxHeads heads, and dh + (the blocks of a sequence) words of shared memory per warp (refused beyond
// the device's opt-in maximum, about 58K blocks on an H100 or H200).
#include "kernels/cuda/topk_attention.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/topk_blocks.h"
#include "kernels/cuda/cache_attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/head_keys.h"

namespace ratplus::cuda {

namespace {

constexpr int kMaxPerLane = kTopKMaxHeadDim / 32;
constexpr int kMaxWarpsPerBlock = 4;
constexpr unsigned kFullMask = 0xffffffffu;

struct HeadBlocks {
  BlockTopK head[kMaxHeads];
};

// The shape of a call as the kernels see it; blocks: the most summaries of one (sequence, head) (⌊k_len /
// B_min⌋ complete blocks of a sequence, or the blocks of a cache); the summary of block blk of head h of
// sequence b lies at b · sequence_stride + h · head_stride + blk · block_stride floats.
struct Shape {
  int64_t batch, heads, q_len, q_pos0, k_len, dh, blocks;
  int64_t sequence_stride, head_stride, block_stride;
  __device__ const float* summaries(const float* base, int64_t b, int64_t h) const {
    return base + b * sequence_stride + h * head_stride;
  }
};

template <class A>
__global__ void block_summaries_kernel(float* summaries, Mat<A> k, Shape s, HeadBlocks head_blocks) {
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= s.batch * s.heads * s.blocks * s.dh) return;
  const int64_t c = id % s.dh, blk = id / s.dh % s.blocks, h = id / (s.dh * s.blocks) % s.heads;
  const int64_t b = id / (s.dh * s.blocks * s.heads);
  const BlockTopK t = head_blocks.head[h];
  if (!t.active() || blk >= s.k_len / t.block) return;
  const int64_t row = b * s.k_len + blk * t.block, col = h * s.dh + c;
  float* summary = summaries + b * s.sequence_stride + h * s.head_stride + blk * s.block_stride;
  cpu::summarize_channel(t.score, summary, c, s.dh, t.block, [&](int64_t j) -> float { return k(row + j, col); });
}

// The score's place in the CPU's order of scores (NaN as −∞, −0 equal to +0) as an unsigned key.
__device__ uint32_t order_key(float score) {
  if (isnan(score)) score = -INFINITY;
  if (score == 0.0f) score = 0.0f;
  const uint32_t u = __float_as_uint(score);
  return u & 0x80000000u ? ~u : u | 0x80000000u;
}

// How many of words[0 … n − 1] pass `test`, counted by the warp.
template <class F>
__device__ int64_t warp_count(const uint32_t* words, int64_t n, int lane, F&& test) {
  unsigned count = 0;
  for (int64_t i = lane; i < n; i += 32) count += test(words[i]);
  return __reduce_add_sync(kFullMask, count);
}

// chosen[b] for the earlier blocks b < own of query q: 1 for the K best-scoring (ties to the lower b), else 0.
// Block b's summary: summaries + b · block_stride.
__device__ void choose_blocks(uint32_t* chosen, const float* q, const float* summaries, int64_t block_stride,
                              const BlockTopK& t, int64_t own, int64_t dh, int lane) {
  const int64_t keep = t.k < own ? t.k : own;
  if (keep == own || keep == 0) {
    for (int64_t b = lane; b < own; b += 32) chosen[b] = keep > 0;
    __syncwarp();
    return;
  }
  for (int64_t b = lane; b < own; b += 32)
    chosen[b] = order_key(cpu::block_score(t.score, q, summaries + b * block_stride, dh, t.block));
  __syncwarp();
  uint32_t threshold = 0;  // the largest key that at least `keep` blocks reach: the keep-th largest key
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t candidate = threshold | (1u << bit);
    if (warp_count(chosen, own, lane, [&](uint32_t key) { return key >= candidate; }) >= keep) threshold = candidate;
  }
  int64_t ties = keep - warp_count(chosen, own, lane, [&](uint32_t key) { return key > threshold; });
  for (int64_t base = 0; base < own; base += 32) {
    const int64_t b = base + lane;
    const uint32_t key = b < own ? chosen[b] : 0;
    const unsigned tied = __ballot_sync(kFullMask, b < own && key == threshold);
    const int rank = __popc(tied & ((1u << lane) - 1));  // tied blocks below b in this run of 32
    if (b < own) chosen[b] = key > threshold || (key == threshold && rank < ties);
    ties -= __popc(tied);
  }
  __syncwarp();
}

// Shared memory words per warp: the query (dh floats) and one word per complete block.
__host__ __device__ int64_t warp_words(const Shape& s) { return s.dh + s.blocks; }

template <class A>
__global__ void topk_attention_kernel(Mat<A> out, Mat<float> lse, Mat<A> q, Mat<A> k, Mat<A> v,
                                      const float* summaries, Shape s, float scale, HeadKeys head_keys,
                                      HeadBlocks head_blocks) {
  extern __shared__ float shared[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + warp;
  if (w >= s.batch * s.heads * s.q_len) return;
  const int64_t i = w % s.q_len, h = w / s.q_len % s.heads, b = w / (s.q_len * s.heads);
  float* q_shared = shared + warp * warp_words(s);
  uint32_t* chosen = reinterpret_cast<uint32_t*>(q_shared + s.dh);
  const int64_t row = b * s.q_len + i, k_base = b * s.k_len, c0 = h * s.dh, t = s.q_pos0 + i;
  float qr[kMaxPerLane], acc[kMaxPerLane];
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    const float x = c < s.dh ? q(row, c0 + c) : 0.0f;
    if (c < s.dh) q_shared[c] = x;
    qr[n] = x * scale;
    acc[n] = 0;
  }
  __syncwarp();
  const BlockTopK topk = head_blocks.head[h];
  const int64_t own = topk.active() ? t / topk.block : -1;
  if (topk.active())
    choose_blocks(chosen, q_shared, s.summaries(summaries, b, h), s.block_stride, topk, own, s.dh, lane);
  const auto attended_block = [&](int64_t j) {
    const int64_t blk = j / topk.block;
    return blk == own || chosen[blk] != 0;
  };

  float running_max = -INFINITY, running_sum = 0;
  const auto visit = [&](int64_t j) {
    float partial = 0;
    for (int n = 0; n < kMaxPerLane; ++n) {
      const int64_t c = lane + 32 * n;
      if (c < s.dh) partial += qr[n] * k(k_base + j, c0 + c);
    }
    const float score = warp_sum(partial);
    const float m = fmaxf(running_max, score);
    const float rescale = expf(running_max - m), p = expf(score - m);
    running_sum = running_sum * rescale + p;
    for (int n = 0; n < kMaxPerLane; ++n) {
      const int64_t c = lane + 32 * n;
      acc[n] = acc[n] * rescale + (c < s.dh ? p * v(k_base + j, c0 + c) : 0.0f);
    }
    running_max = m;
  };
  for_each_key(head_keys.head[h], t, [&](int64_t j) {
    if (!topk.active() || !attended_block(j)) visit(j);
  });
  for (int64_t blk = 0; blk <= own; ++blk) {
    if (blk < own && chosen[blk] == 0) continue;
    const int64_t end = (blk + 1) * topk.block <= t ? (blk + 1) * topk.block : t + 1;
    for (int64_t j = blk * topk.block; j < end; ++j) visit(j);
  }
  for (int n = 0; n < kMaxPerLane; ++n) {
    const int64_t c = lane + 32 * n;
    if (c < s.dh) out.set(row, c0 + c, acc[n] / running_sum);
  }
  if (lane == 0) lse.set(row, h, running_max + logf(running_sum));
}

// One warp per (sequence, head) of a decoding step over a top-k cache (slot j = position j): the blocks the
// sequence's query chooses, as above, then the head's row of the selection — each slot's position when the
// query attends to it (its own or a chosen block, or the fixed key set), else −1 — for the cache kernel.
template <class A>
__global__ void select_slots_kernel(Mat<int32_t> selection, Mat<A> q, const float* summaries,
                                    const int32_t* query_positions, Shape s, HeadKeys head_keys, BlockTopK topk) {
  extern __shared__ float shared[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + warp;
  if (w >= s.batch * s.heads) return;
  const int64_t h = w % s.heads, b = w / s.heads, t = query_positions[b], own = t / topk.block;
  float* q_shared = shared + warp * warp_words(s);
  uint32_t* chosen = reinterpret_cast<uint32_t*>(q_shared + s.dh);
  for (int64_t c = lane; c < s.dh; c += 32) q_shared[c] = q(b, h * s.dh + c);
  __syncwarp();
  choose_blocks(chosen, q_shared, s.summaries(summaries, b, h), s.block_stride, topk, own, s.dh, lane);
  const KeySet keys = head_keys.head[h];
  int32_t* row = selection.row(h) + b * s.k_len;
  for (int64_t j = lane; j < s.k_len; j += 32) {
    const int64_t blk = j / topk.block;
    const bool attended = j <= t && (blk == own || chosen[blk] != 0 || in_key_set(keys, t, j));
    row[j] = attended ? static_cast<int32_t>(j) : -1;
  }
}

Shape shape_of(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  if (dh > 32 * kMaxPerLane)
    throw std::logic_error("attention (CUDA top-k): heads of width <= " + std::to_string(32 * kMaxPerLane) +
                           " are supported, got " + std::to_string(dh));
  Shape s{a.batch, heads, a.q_len, a.q_pos0, a.k_len, dh, 0, 0, 0, 0};
  if (a.key_layout == KeyLayout::cache) {  // the cache's summaries: one BlockTopK for every head
    const Tensor& m = a.block_summaries;
    s.blocks = m.rows / a.batch;
    s.block_stride = m.ld;
    s.head_stride = block_summary_width(a.head_blocks[0].score, dh);
    s.sequence_stride = s.blocks * m.ld;
    return s;
  }
  for (const BlockTopK& t : a.head_blocks)
    if (t.active()) s.blocks = std::max(s.blocks, a.k_len / t.block);
  s.block_stride = 2 * dh;  // room for either score's summary
  s.head_stride = s.blocks * s.block_stride;
  s.sequence_stride = heads * s.head_stride;
  return s;
}

// Warps per block and the dynamic shared memory of a kernel with warp_words(s) words per warp, opting in
// beyond 48 KB.
template <class Kernel>
std::pair<int, size_t> warp_launch(Kernel kernel, const Shape& s) {
  int device = 0, optin = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute");
  const size_t per_warp = static_cast<size_t>(warp_words(s)) * 4;
  if (per_warp > static_cast<size_t>(optin))
    throw std::logic_error("attention (CUDA top-k): " + std::to_string(s.blocks) +
                           " key blocks per sequence need more shared memory than the GPU has; use a larger B");
  const int warps = static_cast<int>(std::min<size_t>(kMaxWarpsPerBlock, optin / per_warp));
  const size_t bytes = warps * per_warp;
  if (bytes > 48 * 1024)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)),
          "cudaFuncSetAttribute");
  return {warps, bytes};
}

// A decoding step over a top-k cache: the selection kernel, then the cache kernel over each head's selected
// slots (as a dense key set: a slot it did not select holds −1 and is never read).
void select_and_attend(const AttentionArgs& a, const Shape& s, const HeadKeys& keys) {
  const cudaStream_t stream = attention_stream(a);
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    const auto [warps, shared_bytes] = warp_launch(select_slots_kernel<A>, s);
    select_slots_kernel<A><<<blocks_for(s.batch * s.heads, warps), 32 * warps, shared_bytes, stream>>>(
        mat<int32_t>(a.selection), mat<A>(a.q), a.block_summaries.ptr<float>(), a.query_positions, s, keys,
        a.head_blocks[0]);
  });
  check_launch("select_slots_kernel");
  const std::vector<KeySet> dense(a.head_keys.size(), KeySet{1, 0, 0});
  AttentionArgs selected = a;
  selected.head_keys = dense;
  selected.head_blocks = {};
  selected.key_positions = a.selection.ptr<int32_t>();
  cache_attention_forward(selected, a.selection.ld);
}

}  // namespace

void topk_attention_forward(const AttentionArgs& a) {
  const Shape s = shape_of(a);
  const HeadKeys keys = pack_head_keys(a.head_keys, [](const KeySet& k) { return k; });
  if (a.key_layout == KeyLayout::cache) return select_and_attend(a, s, keys);
  HeadBlocks blocks{};
  for (size_t h = 0; h < a.head_blocks.size(); ++h) blocks.head[h] = a.head_blocks[h];
  const cudaStream_t stream = attention_stream(a);
  const float scale = 1.0f / sqrtf(static_cast<float>(s.dh));
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    const auto [warps, shared_bytes] = warp_launch(topk_attention_kernel<A>, s);
    const size_t summary_bytes = static_cast<size_t>(s.batch * s.sequence_stride) * sizeof(float);
    float* summaries = nullptr;
    if (summary_bytes > 0) {
      check(cudaMallocAsync(&summaries, summary_bytes, stream), "cudaMallocAsync (top-k block summaries)");
      block_summaries_kernel<A><<<blocks_for(s.batch * s.heads * s.blocks * s.dh, 256), 256, 0, stream>>>(
          summaries, mat<A>(a.k), s, blocks);
    }
    topk_attention_kernel<A><<<blocks_for(a.q.rows * s.heads, warps), 32 * warps, shared_bytes, stream>>>(
        mat<A>(a.out), mat<float>(a.lse), mat<A>(a.q), mat<A>(a.k), mat<A>(a.v), summaries, s, scale, keys,
        blocks);
    const cudaError_t launched = cudaGetLastError();
    if (summaries) check(cudaFreeAsync(summaries, stream), "cudaFreeAsync (top-k block summaries)");
    check(launched, "topk_attention_forward");
  });
}

}  // namespace ratplus::cuda
