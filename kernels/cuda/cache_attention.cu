// Attention of one query per sequence over a compact decoding cache (KeyLayout::cache), flash-decoding
// style. Grid: (run, head, sequence), a run being kCacheSplitSlots consecutive slots; 128 threads.
//   - The run's slot positions are read into shared memory first; a slot outside the query's key set
//     (empty, stale in the ring, beyond the query, or not selected by a top-k head, whose positions are its
//     own: topk_attention.cu) is never read.
//   - Keys and values stream into shared memory in tiles of kTile slots through a kStages-deep cp.async
//     pipeline, so the bytes in flight (kStages − 1 tiles per block) do not live in registers: that is what
//     keeps HBM busy (with the loads in registers, 110 registers per thread allowed 16 warps per SM and
//     2.6 TB/s).
//   - A group of G lanes holds one key (each lane 16 bytes: 8 bf16, 4 f32 or 16 int8 channels; G = dh over
//     that); each warp takes kTile / 4 slots of a tile. A group reduces its dot products across its lanes and
//     folds them into its own online softmax (running maximum, sum, f32 p·v accumulator).
//   - The groups of a warp are merged by shuffles, the warps through shared memory. With one run the
//     block writes out and lse; otherwise the run's unnormalised sum, maximum and sum go to the workspace
//     and a merge kernel (one block per sequence and head) rescales the runs to their common maximum.
//   - An 8-bit cache: the run's key and value scales are read into shared memory with its positions. The
//     query is put on a 24-bit integer grid of its largest |value| and split into three signed bytes per
//     channel (SplitQuery), so a score is three IDP4A per 4 channels — the exact integer dot products —
//     times the query's and the key's scales, with no conversion of the key's bytes. A value's weight is p
//     times the value's scale, and the values' integers become floats by a byte permute and an add
//     (Chunk<int8_t>), not the conversion instruction, whose quarter rate bounded the first version at 61 %
//     of the bandwidth (Nsight Compute).
// Bytes: each attended key and value is read once (2·dh·2 B in bf16; 2·dh + 8 B in 8 bits) plus 4 B of
// position per slot; per key ~4·dh FLOPs, about 1 FLOP per byte, so the kernel is bound by HBM bandwidth:
// the goal is the attended cache's bytes over 4.3 TB/s (the 8-bit kernel, with a channel to convert and
// weigh per byte where bf16 has one per two bytes, is issue-bound so far: docs/PERFORMANCE.md).
// Shared memory per block: positions (2 KiB) and kStages tiles of keys and values (64 KiB in bf16 at dh 128):
// 3 blocks per SM, 144 KiB in flight per SM. Parallelism: batch × heads × runs blocks (16 × 32 = 512 at
// batch 1, dense T 16384; 32,768 at batch 2048, dilated(64)).
// Needs 16-byte aligned rows and a head width of G · 16 / sizeof(element) with G a power of two ≤ 32.
#include <algorithm>
#include <string>
#include <type_traits>

#include "kernels/cuda/cache_attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/head_keys.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32;
constexpr int kTile = 32, kStages = 4;          // slots per tile, tiles in the pipeline
constexpr int kSlotsPerWarp = kTile / kWarps;   // of each tile
constexpr int kMaxWidth = kCacheMaxHeadDim;     // channels of a head

// Shared memory of a block: the run's slot positions (and an 8-bit cache's scales), then kStages tiles of
// keys and of values of cache type C.
template <class C>
size_t shared_bytes(int dh) {
  constexpr bool int8 = std::is_same_v<C, int8_t>;
  return kCacheSplitSlots * (sizeof(int32_t) + (int8 ? 2 * sizeof(float) : 0)) +
         2 * size_t{kStages} * kTile * dh * sizeof(C);
}

// Channels a lane holds of a key: 16 bytes of the cache type C.
template <class C>
constexpr int kLaneChannels = 16 / sizeof(C);

// N consecutive values of T (16-byte aligned, N · sizeof(T) a multiple of 16) as f32.
template <class T, int N>
struct Chunk {
  float x[N];
  __device__ explicit Chunk(const T* p) {
#pragma unroll
    for (int w = 0; w < N * static_cast<int>(sizeof(T)) / 16; ++w) {
      const uint4 raw = reinterpret_cast<const uint4*>(p)[w];
      constexpr int per = 16 / sizeof(T);
#pragma unroll
      for (int i = 0; i < per; ++i) x[w * per + i] = to_float(reinterpret_cast<const T*>(&raw)[i]);
    }
  }
};

// 8-bit integers as f32 without the conversion instruction, which issues at a quarter of the FMA rate (16
// per clock and SM) and would bound the kernel below the bandwidth: b XOR 0x80 is b + 128 as a byte, placed
// under the exponent of 2^23 it makes the float 2^23 + b + 128 (PRMT), and one exact FADD leaves b.
template <int N>
struct Chunk<int8_t, N> {
  float x[N];
  __device__ explicit Chunk(const int8_t* p) {
#pragma unroll
    for (int w = 0; w < N / 16; ++w) {
      const uint4 raw = reinterpret_cast<const uint4*>(p)[w];
      const uint32_t words[4] = {raw.x ^ 0x80808080u, raw.y ^ 0x80808080u, raw.z ^ 0x80808080u, raw.w ^ 0x80808080u};
#pragma unroll
      for (int i = 0; i < 16; ++i)
        x[w * 16 + i] = __uint_as_float(__byte_perm(words[i / 4], 0x4B000000u, 0x7440u + i % 4)) - 8388736.0f;
    }
  }
};

// The f32 query of a lane (E channels, E a multiple of 4) against 8-bit keys: q ≈ scale · (65536·hi + 256·mid
// + lo), the integer below 127·65793 in magnitude (so that each part is a signed byte) rounded from q / scale,
// where scale = the largest |q| of the head (its G lanes) over 127·65793. The grid's step, 2^-23 of that
// largest |q|, is below f32 rounding of the dot product's larger terms.
template <int G, int E>
struct SplitQuery {
  static constexpr int kWords = E / 4;
  static constexpr float kTop = 8355711.0f;  // 127 · 65793 = 127 · (65536 + 256 + 1)
  int part[3][kWords] = {};                  // hi, mid, lo: 4 channels' bytes per word
  float scale;
  __device__ explicit SplitQuery(const float (&q)[E]) {
    float m = 0;
#pragma unroll
    for (int i = 0; i < E; ++i) m = fmaxf(m, fabsf(q[i]));
#pragma unroll
    for (int o = 1; o < G; o <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    scale = m / kTop;
    const float inverse = m > 0 ? kTop / m : 0.0f;
#pragma unroll
    for (int i = 0; i < E; ++i) {
      int x = __float2int_rn(fminf(fmaxf(q[i] * inverse, -kTop), kTop));
      const int lo = (x << 24) >> 24;  // the low byte, signed
      x = (x - lo) >> 8;
      const int mid = (x << 24) >> 24;
      const int hi = (x - mid) >> 8;
      const int shift = 8 * (i % 4);
      part[0][i / 4] |= (hi & 0xff) << shift;
      part[1][i / 4] |= (mid & 0xff) << shift;
      part[2][i / 4] |= (lo & 0xff) << shift;
    }
  }
  // Σ key · (65536·hi + 256·mid + lo) over the lane's E channels (16-byte aligned), unscaled.
  __device__ float dot(const int8_t* key) const {
    int sum[3] = {};
#pragma unroll
    for (int w = 0; w < kWords / 4; ++w) {
      const int4 raw = reinterpret_cast<const int4*>(key)[w];
      const int words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int p = 0; p < 3; ++p) sum[p] = __dp4a(words[i], part[p][4 * w + i], sum[p]);
    }
    const float hi = static_cast<float>(sum[0]), mid = static_cast<float>(sum[1]), lo = static_cast<float>(sum[2]);
    return fmaf(hi, 65536.0f, fmaf(mid, 256.0f, lo));
  }
};

// What a query of a cache of bf16 or f32 keys needs beyond its floats: nothing.
template <int E>
struct FloatQuery {
  __device__ explicit FloatQuery(const float (&)[E]) {}
};

// e^(x − m), 0 for x = −∞ (also when m is −∞).
__device__ __forceinline__ float weight(float x, float m) { return x == -INFINITY ? 0.0f : __expf(x - m); }

// An online softmax over some keys: maximum score, Σ e^(s − m), Σ e^(s − m)·v over this lane's channels.
template <int E>
struct Softmax {
  float m = -INFINITY, l = 0, acc[E] = {};
  // Merges another's state (m2, l2, acc2) into this one.
  __device__ void merge(float m2, float l2, const float (&acc2)[E]) {
    const float mu = fmaxf(m, m2), r1 = weight(m, mu), r2 = weight(m2, mu);
    l = l * r1 + l2 * r2;
#pragma unroll
    for (int i = 0; i < E; ++i) acc[i] = acc[i] * r1 + acc2[i] * r2;
    m = mu;
  }
};

// An 8-bit cache's scales: [heads, batch · k_len], ld apart.
struct CacheScales {
  const float *k = nullptr, *v = nullptr;
  int64_t ld = 0;
};

template <class A, class C, int G>
__global__ void __launch_bounds__(kThreads) cache_attention_kernel(Mat<A> out, Mat<float> lse, Mat<A> q, Mat<C> k,
                                                                   Mat<C> v, CacheScales scales,
                                                                   const int32_t* key_positions,
                                                                   int64_t positions_head_stride,
                                                                   const int32_t* query_positions, int k_len,
                                                                   int dh, float scale, HeadKeys head_keys,
                                                                   float* partials) {
  constexpr bool int8 = std::is_same_v<C, int8_t>;
  constexpr int E = kLaneChannels<C>, groups = 32 / G;
  constexpr int rounds = (kSlotsPerWarp + groups - 1) / groups;  // of a group over its warp's slots of a tile
  extern __shared__ __align__(16) unsigned char shared[];
  int32_t* slot_positions = reinterpret_cast<int32_t*>(shared);
  float* key_scales = reinterpret_cast<float*>(slot_positions + kCacheSplitSlots);  // 8 bits only
  float* value_scales = key_scales + kCacheSplitSlots;
  C* k_tiles = reinterpret_cast<C*>(shared + kCacheSplitSlots * (sizeof(int32_t) + (int8 ? 2 * sizeof(float) : 0)));
  C* v_tiles = k_tiles + kStages * kTile * dh;
  __shared__ float warp_m[kWarps], warp_l[kWarps], warp_acc[kWarps][kMaxWidth];
  const int runs = gridDim.x, run = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, group = lane / G, e = lane % G;
  const int begin = run * static_cast<int>(kCacheSplitSlots);
  const int n = min(k_len - begin, static_cast<int>(kCacheSplitSlots)), tiles = (n + kTile - 1) / kTile;
  const int64_t row0 = static_cast<int64_t>(b) * k_len + begin, c0 = static_cast<int64_t>(h) * dh;
  const int64_t t = query_positions[b];
  const KeySet keys = head_keys.head[h];
  for (int s = threadIdx.x; s < n; s += kThreads) {
    const int32_t p = key_positions[h * positions_head_stride + row0 + s];
    slot_positions[s] = in_key_set(keys, t, p) ? p : -1;  // −1: not attended
    if constexpr (int8) {
      key_scales[s] = scales.k[h * scales.ld + row0 + s];
      value_scales[s] = scales.v[h * scales.ld + row0 + s];
    }
  }
  __syncthreads();
  // This thread's 16-byte chunks of a tile (chunk c = threadIdx.x + m · kThreads of its kTile · G: slot c / G,
  // channels (c mod G) · E on), their addresses in tile 0 computed once; tile i's lie i · kTile rows further.
  constexpr int kChunks = (kTile * G + kThreads - 1) / kThreads;
  int chunk_slot[kChunks];
  uint32_t chunk_shared[kChunks];
  const C *chunk_k[kChunks], *chunk_v[kChunks];
#pragma unroll
  for (int m = 0; m < kChunks; ++m) {
    const int c = threadIdx.x + m * kThreads, col = c % G * E;
    chunk_slot[m] = c < kTile * G ? c / G : kTile;  // kTile: no chunk
    chunk_shared[m] = static_cast<uint32_t>((chunk_slot[m] * dh + col) * sizeof(C));
    chunk_k[m] = k.row(row0 + chunk_slot[m]) + c0 + col;
    chunk_v[m] = v.row(row0 + chunk_slot[m]) + c0 + col;
  }
  const uint32_t k_shared = smem_u32(k_tiles), v_shared = smem_u32(v_tiles);
  const uint32_t stage_bytes = static_cast<uint32_t>(kTile * dh * sizeof(C));
  // Tile i's attended keys and values into stage i mod kStages (one commit group per tile, even empty).
  const auto load_tile = [&](int i) {
    if (i < tiles) {
      const uint32_t stage = (i % kStages) * stage_bytes;
#pragma unroll
      for (int m = 0; m < kChunks; ++m) {
        const int s = i * kTile + chunk_slot[m];
        if (chunk_slot[m] < kTile && s < n && slot_positions[s] >= 0) {
          cp_async16(k_shared + stage + chunk_shared[m], chunk_k[m] + static_cast<int64_t>(i) * kTile * k.ld, true);
          cp_async16(v_shared + stage + chunk_shared[m], chunk_v[m] + static_cast<int64_t>(i) * kTile * v.ld, true);
        }
      }
    }
    cp_async_commit();
  };
  for (int i = 0; i < kStages - 1; ++i) load_tile(i);

  float qf[E];
  {
    const Chunk<A, E> qc(q.row(b) + c0 + e * E);
#pragma unroll
    for (int i = 0; i < E; ++i) qf[i] = qc.x[i] * scale;
  }
  using Query = std::conditional_t<int8, SplitQuery<G, E>, FloatQuery<E>>;
  const Query split(qf);
  Softmax<E> sm;
  for (int i = 0; i < tiles; ++i) {
    load_tile(i + kStages - 1);
    cp_async_wait<kStages - 1>();  // tile i has landed (for this thread's copies) …
    __syncthreads();               // … and for everyone's
    const C* kt = k_tiles + (i % kStages) * kTile * dh;
    const C* vt = v_tiles + (i % kStages) * kTile * dh;
    float score[rounds], mu = sm.m;
    bool live[rounds];
#pragma unroll
    for (int r = 0; r < rounds; ++r) {
      const int in_warp = group + r * groups, slot = warp * kSlotsPerWarp + in_warp, s = i * kTile + slot;
      live[r] = in_warp < kSlotsPerWarp && s < n && slot_positions[s] >= 0;
      float dot = 0;
      if (live[r]) {
        if constexpr (int8) {
          dot = split.dot(kt + slot * dh + e * E);
        } else {
          const Chunk<C, E> kc(kt + slot * dh + e * E);
#pragma unroll
          for (int j = 0; j < E; ++j) dot += qf[j] * kc.x[j];
        }
      }
#pragma unroll
      for (int o = 1; o < G; o <<= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if constexpr (int8) dot *= live[r] ? key_scales[i * kTile + slot] * split.scale : 0.0f;
      score[r] = live[r] ? dot : -INFINITY;
      mu = fmaxf(mu, score[r]);
    }
    const float rescale = weight(sm.m, mu);
    sm.l *= rescale;
#pragma unroll
    for (int j = 0; j < E; ++j) sm.acc[j] *= rescale;
#pragma unroll
    for (int r = 0; r < rounds; ++r) {
      if (!live[r]) continue;
      const float p = __expf(score[r] - mu);
      const int slot = warp * kSlotsPerWarp + group + r * groups;
      const Chunk<C, E> vc(vt + slot * dh + e * E);
      sm.l += p;
      const float pv = int8 ? p * value_scales[i * kTile + slot] : p;
#pragma unroll
      for (int j = 0; j < E; ++j) sm.acc[j] += pv * vc.x[j];
    }
    sm.m = mu;
    __syncthreads();  // stage i mod kStages is free for tile i + kStages
  }
  // The groups of the warp (lanes G, 2G, … apart hold the same channels), then the warps.
#pragma unroll
  for (int o = G; o < 32; o <<= 1) {
    float other[E];
#pragma unroll
    for (int j = 0; j < E; ++j) other[j] = __shfl_xor_sync(0xffffffffu, sm.acc[j], o);
    sm.merge(__shfl_xor_sync(0xffffffffu, sm.m, o), __shfl_xor_sync(0xffffffffu, sm.l, o), other);
  }
  if (group == 0) {
#pragma unroll
    for (int j = 0; j < E; ++j) warp_acc[warp][e * E + j] = sm.acc[j];
    if (e == 0) {
      warp_m[warp] = sm.m;
      warp_l[warp] = sm.l;
    }
  }
  __syncthreads();
  float m = -INFINITY, l = 0, r[kWarps];
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, warp_m[w]);
  for (int w = 0; w < kWarps; ++w) {
    r[w] = warp_l[w] == 0.0f ? 0.0f : __expf(warp_m[w] - m);
    l += warp_l[w] * r[w];
  }
  float* partial = runs > 1 ? partials + ((static_cast<int64_t>(b) * gridDim.y + h) * runs + run) * (dh + 2) : nullptr;
  for (int c = threadIdx.x; c < dh; c += kThreads) {
    float sum = 0;
    for (int w = 0; w < kWarps; ++w) sum += warp_acc[w][c] * r[w];
    if (partial) {
      partial[c] = sum;
    } else {
      out.set(b, static_cast<int64_t>(h) * dh + c, sum / l);
    }
  }
  if (threadIdx.x == 0) {
    if (partial) {
      partial[dh] = m;
      partial[dh + 1] = l;
    } else {
      lse.set(b, h, m + logf(l));
    }
  }
}

// One block per (head, sequence): the runs' partial results rescaled to their common maximum and summed —
// the statistics reduced over the block, then the sums read run by run, coalesced over the channels.
template <class A>
__global__ void __launch_bounds__(kThreads) merge_runs_kernel(Mat<A> out, Mat<float> lse, const float* partials,
                                                              int runs, int dh) {
  __shared__ float reduce[32], w[kThreads];
  const int h = blockIdx.x, b = blockIdx.y;
  const float* base = partials + (static_cast<int64_t>(b) * gridDim.x + h) * runs * (dh + 2);
  const auto stats = [&](int r) { return base + static_cast<int64_t>(r) * (dh + 2) + dh; };  // m, l
  float m = -INFINITY;
  for (int r = threadIdx.x; r < runs; r += kThreads) m = fmaxf(m, stats(r)[1] == 0.0f ? -INFINITY : stats(r)[0]);
  m = block_max(m, reduce);
  float l = 0;
  for (int r = threadIdx.x; r < runs; r += kThreads) l += stats(r)[1] == 0.0f ? 0.0f : stats(r)[1] * __expf(stats(r)[0] - m);
  l = block_sum(l, reduce);
  float sum[kMaxWidth / kThreads] = {};
  for (int r0 = 0; r0 < runs; r0 += kThreads) {
    const int r = r0 + threadIdx.x;
    w[threadIdx.x] = r < runs && stats(r)[1] != 0.0f ? __expf(stats(r)[0] - m) : 0.0f;
    __syncthreads();
    for (int i = 0; i < min(kThreads, runs - r0); ++i)
      if (w[i] != 0.0f)
        for (int c = threadIdx.x, j = 0; c < dh; c += kThreads, ++j)
          sum[j] += base[static_cast<int64_t>(r0 + i) * (dh + 2) + c] * w[i];
    __syncthreads();
  }
  for (int c = threadIdx.x, j = 0; c < dh; c += kThreads, ++j) out.set(b, static_cast<int64_t>(h) * dh + c, sum[j] / l);
  if (threadIdx.x == 0) lse.set(b, h, m + logf(l));
}

bool aligned(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.ld * dtype_size(t.dtype) % 16 == 0;
}

template <class A, class C, int G>
void launch(const AttentionArgs& a, int dh, int runs, const HeadKeys& keys, int64_t positions_head_stride) {
  const dim3 grid(runs, static_cast<unsigned>(a.head_keys.size()), static_cast<unsigned>(a.batch));
  float* partials = runs > 1 ? a.workspace.ptr<float>() : nullptr;
  const size_t shared = shared_bytes<C>(dh);
  static const bool sized = [&] {  // once per kernel instance: allow more than 48 KiB of shared memory
    check(cudaFuncSetAttribute(cache_attention_kernel<A, C, G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(shared_bytes<C>(std::min(kMaxWidth, 32 * kLaneChannels<C>)))),
          "cudaFuncSetAttribute");
    return true;
  }();
  (void)sized;
  const CacheScales scales =
      a.k_scale.empty() ? CacheScales{} : CacheScales{a.k_scale.ptr<float>(), a.v_scale.ptr<float>(), a.k_scale.ld};
  cache_attention_kernel<A, C, G><<<grid, kThreads, shared, attention_stream(a)>>>(
      mat<A>(a.out), mat<float>(a.lse), mat<A>(a.q), mat<C>(a.k), mat<C>(a.v), scales, a.key_positions,
      positions_head_stride, a.query_positions, static_cast<int>(a.k_len), dh,
      1.0f / sqrtf(static_cast<float>(dh)), keys, partials);
  check_launch("cache_attention_kernel");
  if (runs > 1) {
    merge_runs_kernel<A><<<dim3(grid.y, grid.z), kThreads, 0, attention_stream(a)>>>(mat<A>(a.out), mat<float>(a.lse),
                                                                                    partials, runs, dh);
    check_launch("merge_runs_kernel");
  }
}

// Calls f.template operator()<A, C, G>() for the activation type A, the cache type C (A, or int8_t for an
// 8-bit cache) and G lanes per key.
template <class F>
void with_types(const AttentionArgs& a, int lanes, F&& f) {
  const auto per_cache = [&]<class A, class C>() {
    switch (lanes) {
      case 1: return f.template operator()<A, C, 1>();
      case 2: return f.template operator()<A, C, 2>();
      case 4: return f.template operator()<A, C, 4>();
      case 8: return f.template operator()<A, C, 8>();
      case 16: return f.template operator()<A, C, 16>();
      default: return f.template operator()<A, C, 32>();
    }
  };
  with_activation_type(a.q.dtype, "attention (CUDA cache)", [&]<class A>() {
    if (a.k.dtype == DType::i8)
      per_cache.template operator()<A, int8_t>();
    else
      per_cache.template operator()<A, A>();
  });
}

}  // namespace

void cache_attention_forward(const AttentionArgs& a, int64_t positions_head_stride) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  const int64_t lanes = dh * static_cast<int64_t>(dtype_size(a.k.dtype)) / 16;
  if (!gpu_cache_attention_takes(dh, a.k.dtype) || !aligned(a.q) || !aligned(a.k) || !aligned(a.v) ||
      a.k_len >= (int64_t(1) << 31))
    throw std::logic_error("attention (CUDA cache): heads of width " + std::to_string(dh) +
                           " or rows not 16-byte aligned; the kernel takes 16-byte aligned rows and widths of 16 B "
                           "times a power of two up to 32");
  const int runs = static_cast<int>((a.k_len + kCacheSplitSlots - 1) / kCacheSplitSlots);
  const HeadKeys keys = pack_head_keys(a.head_keys, [](const KeySet& s) { return s; });
  with_types(a, static_cast<int>(lanes),
             [&]<class A, class C, int G>() {
               launch<A, C, G>(a, static_cast<int>(dh), runs, keys, positions_head_stride);
             });
}

}  // namespace ratplus::cuda
