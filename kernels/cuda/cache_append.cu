// The fused middle of a decoding step on the GPU (kernels/cache_append.h): one thread per (sequence, head,
// channel pair c, c + dh/2) reads that pair of q, k, v (and g and the f32 state for RAT+), advances the
// recurrence (a = sigmoid(g); k̃ = a·k̃ + (1 − a)·k, ṽ likewise, in f32, the state kept unrounded and k̃
// rounded to the activation type before RoPE, as the full forward rounds it), rotates q and k̃ by the
// sequence's position (angle in double, as the RoPE op), and writes the rotated key and the value into the
// slot of that position in every head group's cache that holds the head, with the position beside it.
// Grid: (sequence, head blocks); a block holds whole heads of one sequence (as many as fit in kThreads
// threads), so what depends only on the sequence's position — each channel pair's rotation (a double
// exponential and sine and cosine) and each cache's slot (64-bit remainders) — is computed once per block into
// shared memory rather than by every thread. Blocks stay small so that several share an SM and one's loads
// overlap another's prologue: a block of all 16 heads of a 1.5B layer (1024 threads) allowed one per SM and
// was latency-bound at 1.1 TB/s (Nsight Compute: 50 % occupancy, warps stalled on their loads), as was the
// first version, one thread per element with 64-bit index divisions.
// A block holds whole heads, so for an 8-bit cache the head's largest |key| and |value| are reduced in
// shared memory and each thread writes its pair's integers, one thread the two scales. Into a top-k cache
// each thread also folds its pair of the stored key into its block's f32 summary (kernels/cpu/topk_blocks.h).
// It replaces a recurrence launch, two RoPE launches and per-sequence copies with one launch whose slot
// indices are computed on the device, so the step has no host work and can be captured in a CUDA graph.
// Bytes per channel: 4 activations read (5 with g) and 1 written plus 2 per cache (1 in 8 bits), 8 B of
// state read and written — about 20 B in bf16 for ~40 FLOPs; at batch × d_model channels per layer (4M at
// batch 2048, d 2048: ~80 MB) it is memory-bound and small beside the layer's weights and cache reads.
//
// quantize_to_int8 (a prompt's keys and values into an 8-bit cache): one warp per (row, head) reduces the
// largest |x| by shuffles and writes the integers and the scale; it reads 2 B and writes 1 B per element.
// summarize_prompt_blocks (a prompt's keys into a top-k cache's summaries): one thread per (block, head,
// channel) folds the block's keys in position order, reading each key element once.
#include "kernels/cpu/topk_blocks.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;      // per block: of the prompt kernels; of the append, whole heads up to this
constexpr int kMaxThreads = 1024;  // per block of the append: one head of up to 2048 channels
constexpr int kMaxCaches = 64;     // head groups of one layer

// A cache as the kernel sees it (32-bit fields keep the argument block small). k_scale, v_scale: an 8-bit
// cache's scales, [heads, rows] scale_ld apart; null otherwise. summaries: a top-k cache's block summaries
// (rows b · blocks + position / block, summary_ld apart), null otherwise.
struct DeviceCache {
  void *k, *v;
  float *k_scale, *v_scale;
  float* summaries;
  int32_t* positions;
  int32_t k_ld, v_ld, scale_ld, first_head, heads;
  int32_t dilation, sinks, dilated, ring, first_multiple, capacity;
  int32_t summary_ld, blocks, block;
  BlockScore score;
  __device__ int64_t slot(int64_t j) const {
    return CacheSlots{dilation, sinks, dilated, ring, first_multiple}.slot(j);
  }
};

struct DeviceCaches {
  DeviceCache cache[kMaxCaches];
  int count;
  bool int8;  // some cache holds 8 bits
};

// A pair of channels into cache rows of type T.
template <class T>
__device__ void store_pair(void* base, int64_t ld, int64_t row, int64_t col, int64_t half, T x1, T x2) {
  T* r = static_cast<T*>(base) + row * ld;
  r[col] = x1;
  r[col + half] = x2;
}

template <class A>
__global__ void cache_append_kernel(Mat<A> q_out, Mat<A> q, Mat<A> k, Mat<A> v, Mat<A> g, Mat<float> state_k,
                                    Mat<float> state_v, const int32_t* positions, DeviceCaches caches, int heads,
                                    int half, double log_base) {
  __shared__ unsigned largest[2][kMaxThreads];        // per head of the block: max |key|, max |value| (f32 bits)
  __shared__ float rotation[2][kMaxThreads];          // per channel pair: cos, sin of the position's angle
  __shared__ int64_t rows[kMaxCaches];                // per cache: the sequence's row of its position
  const int64_t b = blockIdx.x, pos = positions[b];
  const int i = blockIdx.y * blockDim.x + threadIdx.x, h = i / half, c = i % half;
  const bool live = h < heads;  // the block holds whole heads: live is uniform over a head
  const int64_t j1 = static_cast<int64_t>(h) * 2 * half + c, j2 = j1 + half;
  const int local = threadIdx.x / half;
  if (threadIdx.x < half) {
    double sn, co;
    sincos(static_cast<double>(pos) * exp(-2.0 * threadIdx.x / (2 * half) * log_base), &sn, &co);
    rotation[0][threadIdx.x] = static_cast<float>(co);
    rotation[1][threadIdx.x] = static_cast<float>(sn);
  }
  for (int n = threadIdx.x; n < caches.count; n += blockDim.x)
    rows[n] = b * caches.cache[n].capacity + caches.cache[n].slot(pos);
  __syncthreads();
  A key1{}, key2{}, value1{}, value2{};
  if (live) {
    float k1 = k(b, j1), k2 = k(b, j2), v1 = v(b, j1), v2 = v(b, j2);
    if (g.p) {  // one recurrence step from the state, which it replaces
      const float a1 = sigmoid(g(b, j1)), a2 = sigmoid(g(b, j2));
      k1 = a1 * state_k(b, j1) + (1.0f - a1) * k1;
      k2 = a2 * state_k(b, j2) + (1.0f - a2) * k2;
      v1 = a1 * state_v(b, j1) + (1.0f - a1) * v1;
      v2 = a2 * state_v(b, j2) + (1.0f - a2) * v2;
      state_k.set(b, j1, k1);
      state_k.set(b, j2, k2);
      state_v.set(b, j1, v1);
      state_v.set(b, j2, v2);
      k1 = to_float(from_float<A>(k1));
      k2 = to_float(from_float<A>(k2));
    }
    const float cs = rotation[0][c], sn = rotation[1][c];
    const float q1 = q(b, j1), q2 = q(b, j2);
    q_out.set(b, j1, q1 * cs - q2 * sn);
    q_out.set(b, j2, q2 * cs + q1 * sn);
    key1 = from_float<A>(k1 * cs - k2 * sn);
    key2 = from_float<A>(k2 * cs + k1 * sn);
    value1 = from_float<A>(v1);
    value2 = from_float<A>(v2);
  }
  float key_scale = 0, value_scale = 0;
  if (caches.int8) {  // uniform over the grid
    if (c == 0) largest[0][local] = largest[1][local] = 0;
    __syncthreads();
    if (live) {  // |x| ≥ 0 orders as its bits do
      atomicMax(&largest[0][local], __float_as_uint(fmaxf(fabsf(to_float(key1)), fabsf(to_float(key2)))));
      atomicMax(&largest[1][local], __float_as_uint(fmaxf(fabsf(to_float(value1)), fabsf(to_float(value2)))));
    }
    __syncthreads();
    key_scale = __uint_as_float(largest[0][local]) / 127.0f;
    value_scale = __uint_as_float(largest[1][local]) / 127.0f;
  }
  if (!live) return;
  for (int n = 0; n < caches.count; ++n) {
    const DeviceCache& cache = caches.cache[n];
    if (h < cache.first_head || h >= cache.first_head + cache.heads) continue;
    const int64_t row = rows[n], col = static_cast<int64_t>(h - cache.first_head) * 2 * half + c;
    if (cache.k_scale) {
      store_pair(cache.k, cache.k_ld, row, col, half, to_int8_grid(to_float(key1), key_scale),
                 to_int8_grid(to_float(key2), key_scale));
      store_pair(cache.v, cache.v_ld, row, col, half, to_int8_grid(to_float(value1), value_scale),
                 to_int8_grid(to_float(value2), value_scale));
      if (c == 0) {
        cache.k_scale[(h - cache.first_head) * static_cast<int64_t>(cache.scale_ld) + row] = key_scale;
        cache.v_scale[(h - cache.first_head) * static_cast<int64_t>(cache.scale_ld) + row] = value_scale;
      }
    } else {
      store_pair(cache.k, cache.k_ld, row, col, half, key1, key2);
      store_pair(cache.v, cache.v_ld, row, col, half, value1, value2);
    }
    if (cache.summaries) {
      const int64_t dh = 2 * half;
      float* summary = cache.summaries + (b * cache.blocks + pos / cache.block) * cache.summary_ld +
                       (h - cache.first_head) * block_summary_width(cache.score, dh);
      cpu::fold_channel(cache.score, summary, c, dh, to_float(key1), pos % cache.block == 0);
      cpu::fold_channel(cache.score, summary, c + half, dh, to_float(key2), pos % cache.block == 0);
    }
    if (h == cache.first_head && c == 0) cache.positions[row] = static_cast<int32_t>(pos);
  }
}

DeviceCaches device_caches(std::span<const CacheView> views) {
  if (views.size() > kMaxCaches)
    throw std::logic_error("cache_append (CUDA): at most " + std::to_string(kMaxCaches) + " head groups, got " +
                           std::to_string(views.size()));
  DeviceCaches out{};
  out.count = static_cast<int>(views.size());
  for (size_t n = 0; n < views.size(); ++n) {
    const CacheView& c = views[n];
    const CacheSlots& s = c.slots;
    out.int8 = out.int8 || c.int8();
    const bool topk = c.topk.active();
    out.cache[n] = {c.k.data,
                    c.v.data,
                    c.int8() ? c.k_scale.ptr<float>() : nullptr,
                    c.int8() ? c.v_scale.ptr<float>() : nullptr,
                    topk ? c.summaries.ptr<float>() : nullptr,
                    c.positions.ptr<int32_t>(),
                    static_cast<int32_t>(c.k.ld),
                    static_cast<int32_t>(c.v.ld),
                    static_cast<int32_t>(c.int8() ? c.k_scale.ld : 0),
                    static_cast<int32_t>(c.first_head),
                    static_cast<int32_t>(c.heads),
                    static_cast<int32_t>(s.dilation),
                    static_cast<int32_t>(s.sinks),
                    static_cast<int32_t>(s.dilated),
                    static_cast<int32_t>(s.ring),
                    static_cast<int32_t>(s.first_multiple),
                    static_cast<int32_t>(s.capacity()),
                    static_cast<int32_t>(topk ? c.summaries.ld : 0),
                    static_cast<int32_t>(topk ? c.summary_blocks() : 0),
                    static_cast<int32_t>(c.topk.block),
                    c.topk.score};
    if (c.int8() && c.k_scale.ld != c.v_scale.ld)
      throw std::logic_error("cache_append (CUDA): an 8-bit cache's key and value scales share their row stride");
  }
  return out;
}

template <class A>
__global__ void quantize_kernel(Mat<int8_t> q, Mat<float> scales, Mat<A> x, int64_t rows, int64_t heads, int dh) {
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows * heads) return;
  const int64_t r = warp / heads, c0 = warp % heads * dh;
  float m = 0;
  for (int c = lane; c < dh; c += 32) m = fmaxf(m, fabsf(x(r, c0 + c)));
  const float s = warp_max(m) / 127.0f;
  for (int c = lane; c < dh; c += 32) q.row(r)[c0 + c] = to_int8_grid(x(r, c0 + c), s);
  if (lane == 0) scales.set(warp % heads, r, s);
}

template <class A>
__global__ void summarize_kernel(float* summaries, int64_t ld, Mat<A> keys, int64_t n, BlockTopK topk,
                                 int64_t heads, int64_t dh) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t blocks = (n + topk.block - 1) / topk.block;
  if (i >= blocks * heads * dh) return;
  const int64_t c = i % dh, h = i / dh % heads, blk = i / (dh * heads), first = blk * topk.block;
  const int64_t count = n - first < topk.block ? n - first : topk.block;
  float* summary = summaries + blk * ld + h * block_summary_width(topk.score, dh);
  cpu::summarize_channel(topk.score, summary, c, dh, count,
                         [&](int64_t j) -> float { return keys(first + j, h * dh + c); });
}

}  // namespace

void cache_append(const CacheAppendArgs& a) {
  const int64_t batch = a.q.rows, half = a.q.cols / a.n_heads / 2;
  if (half > kMaxThreads) throw std::logic_error("cache_append (CUDA): heads wider than 2048 channels");
  const int64_t heads_per_block = std::min<int64_t>(a.n_heads, std::max<int64_t>(1, kThreads / half));
  const auto threads = static_cast<int>(heads_per_block * half);
  const dim3 grid(static_cast<unsigned>(batch), blocks_for(a.n_heads, static_cast<int>(heads_per_block)));
  const DeviceCaches caches = device_caches(a.caches);
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    cache_append_kernel<A><<<grid, threads, 0, cuda_stream()>>>(
        mat<A>(a.q_out), mat<A>(a.q), mat<A>(a.k), mat<A>(a.v), mat<A>(a.g), mat<float>(a.state.k),
        mat<float>(a.state.v), a.positions.ptr<int32_t>(), caches, static_cast<int>(a.n_heads),
        static_cast<int>(half), std::log(a.rope_base));
  });
  check_launch(__func__);
}

void summarize_prompt_blocks(const CacheView& c, int64_t b, const Tensor& keys, int64_t n) {
  if (n == 0) return;
  const int64_t dh = keys.cols / c.heads, blocks = c.summary_blocks();
  const int64_t threads = (n + c.topk.block - 1) / c.topk.block * keys.cols;
  with_activation_type(keys.dtype, __func__, [&]<class A>() {
    summarize_kernel<A><<<blocks_for(threads, kThreads), kThreads, 0, cuda_stream()>>>(
        c.summaries.ptr<float>() + b * blocks * c.summaries.ld, c.summaries.ld, mat<A>(keys), n, c.topk, c.heads, dh);
  });
  check_launch(__func__);
}

void quantize_to_int8(Tensor q, Tensor scales, const Tensor& x, int64_t head_dim) {
  const int64_t heads = x.cols / head_dim, warps = x.rows * heads;
  with_activation_type(x.dtype, __func__, [&]<class A>() {
    quantize_kernel<A><<<blocks_for(warps * 32, kThreads), kThreads, 0, cuda_stream()>>>(
        mat<int8_t>(q), mat<float>(scales), mat<A>(x), x.rows, heads, static_cast<int>(head_dim));
  });
  check_launch(__func__);
}

}  // namespace ratplus::cuda
