// Attention over structured key sets on the tensor cores (SPEC §2 step 6, §3), flash-style, forward and
// backward, for bf16 activations and head width 64 or 128; kernels/cuda/attention.cu runs its general
// kernel when this path declines (flash_attention.h).
//
// Key sets. Query t of a head with pattern (D, W, P) sees (kernels/attention.h) two disjoint sets:
//   band pairs     j ≤ t and (j < P or j ≥ t − W)        the sinks and the near band, contiguous keys
//   compact pairs  j = c·D + D − 1 with P ≤ j < t − W    the dilated keys not already in the band
// Dense (D = 1) becomes (D 0, W T, P 0): the band is then the whole causal triangle. Compact key c is row
// c·D + D − 1 of K̃ and Ṽ, and the kernels load it in place through that index: a row is dh·2 = 128 or
// 256 contiguous bytes either way (rows of the full K̃ are no closer, K̃ being a column slice), so the
// compact keys form dense tiles without a gathered copy.
//
// Forward: one block of 8 warps per (sequence, head, 128 queries); warp w owns queries 16w … 16w + 15 and
// keeps their Q fragments in registers. The block sweeps 64-key tiles: the compact tiles with keys
// below t_max − W, the sink tile(s), then the band tiles covering [t_min − W, t_max] of the full K̃,
// double-buffered in shared memory by cp.async. Per tile and warp: S = Q·Kᵀ with mma.sync m16n8k16
// (bf16 → f32, B fragments by ldmatrix), a per-element mask only where the tile crosses the warp's key
// sets partly (a tile outside all of them is skipped by that warp), online softmax in base 2 in
// registers, and O += P·V with P re-packed as bf16 A fragments and V fragments by ldmatrix.trans. One
// online softmax runs over all tiles; O is written in bf16, the natural log-sum-exp in f32.
//
// Backward: a prologue kernel stores, per (sequence, head, query), Δ = rowsum(dO ∘ O) and the base-2
// log-sum-exp in a [batch·heads, T rounded up to 64] scratch (padding: Δ 0, lse +∞). The main kernel
// runs one block of 8 warps per (sequence, head, 128-key tile) of either kind, band tiles of the full K̃
// or compact tiles, warp w owning keys 16w … 16w + 15, and sweeps the 64-query tiles that see those keys:
// Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; P = exp2(S·scale·log2 e − lse₂) recomputed; dS = P ∘ (dP − Δ)·scale;
// dV += Pᵀ·dO and dK += dSᵀ·Q accumulate in registers over the whole sweep; dSᵀ goes through shared
// memory for dQ = dS·K, added with vector f32 atomics to an f32 scratch (as FlashAttention-2 does: a
// query row receives from every key tile that sees it, and the atomic-free alternative, a second sweep
// per query tile, recomputes S and dP: 7 products instead of 5). No atomics elsewhere: dK and dV of a
// band tile go straight to dk, dv (each row is written by exactly one block); those of a compact tile go
// to their own f32 buffers, and an epilogue kernel adds them to rows c·D + D − 1 of dk, dv, which also
// hold that row's band gradient. dq is the f32 scratch converted to bf16.
//
// Cost. k keys per query cost 4·k·dh FLOPs forward and 10·k·dh backward per (query, head): causal
// dense at T = 4096, dh = 128 is 2·T²·dh ≈ 4.3 GFLOP forward per (sequence, head), a sparse pattern about
// k/T of that plus its partly masked edge tiles. HBM traffic is small beside it (Q, K̃, Ṽ, O once, T·dh·2
// bytes each); key tiles are re-read per query tile from L2, 128 FLOPs per byte. The limits are the
// tensor cores on the mma.sync path (on Hopper well below the wgmma rate), shared-memory bandwidth
// (every warp reads the whole key tile through ldmatrix: 16 FLOPs per byte against the ~32 that would
// keep the tensor cores fed) and one exp2 per score on the special-function units; the backward adds the
// dQ atomics (one 8-byte add per 2 elements of a 64 × dh tile per step) and two barriers per step. At
// dh = 128 the forward holds about 230 registers per thread and 102 KB of shared memory, the backward
// about 250 and 155 KB: one block, 8 warps, per multiprocessor, their latency hidden by the prefetch
// one tile ahead and by independent mma chains within each warp.
#include "kernels/cuda/flash_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "core/buffer.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kMaxHeads = 128;
constexpr int64_t kMaxSeq = int64_t(1) << 22;  // keeps positions, tile counts and grid sizes in range
constexpr int kThreads = 256;                  // 8 warps, 16 rows (queries or keys) each
constexpr int kFwdQueries = 128, kFwdKeys = 64;
constexpr int kBwdKeys = 128, kBwdQueries = 64;
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// A head's key set as the kernels use it: dilation 0 = no compact keys; dense is (0, T, 0).
struct Pattern {
  int dilation, window, sinks;
};

struct Patterns {
  Pattern head[kMaxHeads];
};

// Row of compact key c.
__host__ __device__ inline int compact_row(const Pattern& p, int c) { return c * p.dilation + p.dilation - 1; }
// The first compact key not among the sinks.
__host__ __device__ inline int first_compact(const Pattern& p) { return (p.sinks + p.dilation) / p.dilation - 1; }
// One past the last compact key a query ≤ t_max sees.
__host__ __device__ inline int compact_end(const Pattern& p, int t_max) {
  return t_max > p.window ? (t_max - p.window) / p.dilation : 0;
}

__host__ __device__ inline bool band_pair(const Pattern& p, int t, int j) {
  return j <= t && (j < p.sinks || j >= t - p.window);
}

__host__ __device__ inline bool compact_pair(const Pattern& p, int t, int c) {
  const int j = compact_row(p, c);
  return j >= p.sinks && j < t - p.window;
}

// How keys k0 … k1 (band positions or compact indices) meet the key sets of queries t0 … t1.
enum class Cover { none, some, all };

__host__ __device__ inline Cover cover(const Pattern& p, bool compact, int k0, int k1, int t0, int t1) {
  if (compact) {
    const int j0 = compact_row(p, k0), j1 = compact_row(p, k1);
    if (j1 < p.sinks || j0 >= t1 - p.window) return Cover::none;
    return j0 >= p.sinks && j1 < t0 - p.window ? Cover::all : Cover::some;
  }
  if (k0 > t1 || (k0 >= p.sinks && k1 < t0 - p.window)) return Cover::none;
  return k1 <= t0 && (k1 < p.sinks || k0 >= t1 - p.window) ? Cover::all : Cover::some;
}

// The key tiles of a forward block (queries q0 … q1 − 1) in visiting order: the compact tiles holding
// keys below t_max − W, the tiles of the sinks [0, min(P, q1)), then the band tiles over
// [max(0, q0 − W), q1) not already visited.
struct ForwardPlan {
  int compact_begin = 0, n_compact = 0, n_sink, band_begin, n_tiles;

  __host__ __device__ ForwardPlan(const Pattern& p, int q0, int q1) {
    if (p.dilation > 0) {
      const int first = first_compact(p), end = compact_end(p, q1 - 1);
      compact_begin = first / kFwdKeys * kFwdKeys;
      if (end > first) n_compact = (end - compact_begin + kFwdKeys - 1) / kFwdKeys;
    }
    n_sink = (std::min(p.sinks, q1) + kFwdKeys - 1) / kFwdKeys;
    band_begin = std::max(n_sink, std::max(0, q0 - p.window) / kFwdKeys);
    n_tiles = n_compact + n_sink + std::max(0, (q1 + kFwdKeys - 1) / kFwdKeys - band_begin);
  }
  __host__ __device__ bool compact(int i) const { return i < n_compact; }
  // The first key of tile i: a compact index or a band position.
  __host__ __device__ int start(int i) const {
    if (i < n_compact) return compact_begin + i * kFwdKeys;
    i -= n_compact;
    return (i < n_sink ? i : band_begin + i - n_sink) * kFwdKeys;
  }
};

// What backward block `tile` of a head does: its keys k0 … k0 + kBwdKeys − 1 (compact indices for the
// first compact_tiles blocks, band positions after them), the 64-query steps that see any of them, and
// the end of the keys whose gradient it writes. n_steps is 0 for a block with nothing to do.
struct BackwardPlan {
  bool compact;
  int k0 = 0, key_end = 0, step_begin = 0, n_steps = 0;

  __host__ __device__ BackwardPlan(const Pattern& p, int seq, int tile, int compact_tiles)
      : compact(tile < compact_tiles) {
    int t_begin, t_end;
    if (compact) {
      if (p.dilation == 0) return;
      const int first = first_compact(p);
      key_end = compact_end(p, seq - 1);
      k0 = (first / kBwdKeys + tile) * kBwdKeys;
      if (k0 >= key_end) return;
      t_begin = compact_row(p, std::max(k0, first)) + p.window + 1;  // ≤ seq − 1 as k0 < key_end
      t_end = seq;
    } else {
      k0 = (tile - compact_tiles) * kBwdKeys;
      key_end = seq;
      t_begin = k0;
      t_end = k0 < p.sinks ? seq : std::min(seq, k0 + kBwdKeys + p.window);
    }
    step_begin = t_begin / kBwdQueries;
    n_steps = (t_end + kBwdQueries - 1) / kBwdQueries - step_begin;
  }
};

// --- PTX wrappers -------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, asynchronous; zeros when !valid (src must still be a valid address).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// d += a·b for a 16×16 bf16 A (row-major fragments), a 16×8 bf16 B and a 16×8 f32 accumulator.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// A fragments (16 rows × 16 columns starting at column 16·kk) from accumulators of n-tiles 2kk, 2kk + 1.
__device__ __forceinline__ void to_a_fragment(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// Fragment addresses in a row-major bf16 tile with row stride ld (elements). Lane l addresses row
// l % 8 of 8×8 matrix l / 8.
// A operand, rows r0 … r0 + 15 × columns c0 … c0 + 15 (matrices: rows +0/+8 × columns +0/+8).
__device__ __forceinline__ uint32_t a_address(const bf16* tile, int ld, int r0, int c0, int lane) {
  return smem_u32(tile + (r0 + (lane & 15)) * ld + c0 + (lane >> 4) * 8);
}
// B operand of two n-tiles from a tile stored [n][k] (Kᵀ, Qᵀ, dOᵀ): n0 … n0 + 15 × k0 … k0 + 15;
// registers 0, 1 serve n-tile n0 and 2, 3 n-tile n0 + 8.
__device__ __forceinline__ uint32_t bt_address(const bf16* tile, int ld, int n0, int k0, int lane) {
  return smem_u32(tile + (n0 + (lane & 7) + (lane >> 4) * 8) * ld + k0 + (lane & 8));
}
// B operand of two n-tiles from a tile stored [k][n] (V, dO, Q, K), with ldmatrix.trans.
__device__ __forceinline__ uint32_t b_address(const bf16* tile, int ld, int k0, int n0, int lane) {
  return smem_u32(tile + (k0 + (lane & 7) + (lane & 8)) * ld + n0 + (lane >> 4) * 8);
}

// Copies ROWS rows of DH bf16 into a shared tile of row stride DH + 8 with cp.async; row r comes from
// src(r), or is zero where src(r) is null (`any` is a valid address to name then).
template <int DH, int ROWS, class Src>
__device__ __forceinline__ void load_tile(bf16* dst, Src src, const bf16* any) {
  constexpr int chunks = DH / 8;
  static_assert(ROWS * chunks % kThreads == 0);
#pragma unroll
  for (int it = 0; it < ROWS * chunks / kThreads; ++it) {
    const int i = it * kThreads + static_cast<int>(threadIdx.x), r = i / chunks, c = i % chunks;
    const bf16* row = src(r);
    cp_async16(smem_u32(dst + r * (DH + 8) + c * 8), row ? row + c * 8 : any, row != nullptr);
  }
}

// --- forward ------------------------------------------------------------------------------------------

struct ForwardArgs {
  Mat<bf16> q, k, v, out;
  Mat<float> lse;
  int seq, heads;
  float scale_log2;  // scale · log2 e
};

template <int DH>
constexpr size_t forward_smem_bytes() {
  return static_cast<size_t>(kFwdQueries + 4 * kFwdKeys) * (DH + 8) * sizeof(bf16);
}

template <int DH>
__global__ void __launch_bounds__(kThreads, 1) flash_forward_kernel(ForwardArgs a, Patterns patterns) {
  constexpr int LD = DH + 8, BQ = kFwdQueries, BK = kFwdKeys;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sk = sq + BQ * LD;      // two buffers of BK rows
  bf16* sv = sk + 2 * BK * LD;  // two buffers of BK rows
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int b = blockIdx.x / a.heads, h = blockIdx.x % a.heads, T = a.seq;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * BQ, q1 = min(q0 + BQ, T);  // longest rows first
  const Pattern pat = patterns.head[h];
  const int64_t base = static_cast<int64_t>(b) * T;
  const bf16* q = a.q.p + h * DH;
  const bf16* k = a.k.p + h * DH;
  const bf16* v = a.v.p + h * DH;

  const ForwardPlan plan(pat, q0, q1);
  const auto load_keys = [&](int i, int buf) {
    const bool compact = plan.compact(i);
    const int start = plan.start(i);
    const auto rows = [&](const bf16* x, int64_t ld) {
      return [=](int r) -> const bf16* {
        const int j = compact ? compact_row(pat, start + r) : start + r;
        return j < T ? x + (base + j) * ld : nullptr;
      };
    };
    load_tile<DH, BK>(sk + buf * BK * LD, rows(k, a.k.ld), k);
    load_tile<DH, BK>(sv + buf * BK * LD, rows(v, a.v.ld), v);
  };

  load_tile<DH, BQ>(
      sq, [&](int r) -> const bf16* { return q0 + r < T ? q + (base + q0 + r) * a.q.ld : nullptr; }, q);
  load_keys(0, 0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[DH / 16][4];
#pragma unroll
  for (int kk = 0; kk < DH / 16; ++kk) ldmatrix_x4(qf[kk], a_address(sq, LD, warp * 16, kk * 16, lane));

  // This thread holds rows t0 + g and t0 + g + 8 of the warp's 16 queries.
  const int t0 = q0 + warp * 16;
  float o[DH / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int i = 0; i < plan.n_tiles; ++i) {
    if (i > 0) {
      cp_async_wait_all();  // tile i has landed
      __syncthreads();      // … for every thread, and tile i − 1 is no longer read
    }
    if (i + 1 < plan.n_tiles) {
      load_keys(i + 1, (i + 1) & 1);
      cp_async_commit();
    }
    const bool compact = plan.compact(i);
    const int start = plan.start(i);
    const Cover cov = cover(pat, compact, start, start + BK - 1, t0, t0 + 15);
    if (cov == Cover::none) continue;
    const bf16* kt = sk + (i & 1) * BK * LD;
    const bf16* vt = sv + (i & 1) * BK * LD;

    float s[BK / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < DH / 16; ++kk)
#pragma unroll
      for (int np = 0; np < BK / 16; ++np) {
        uint32_t bf[4];
        ldmatrix_x4(bf, bt_address(kt, LD, np * 16, kk * 16, lane));
        mma(s[2 * np], qf[kk], bf[0], bf[1]);
        mma(s[2 * np + 1], qf[kk], bf[2], bf[3]);
      }

    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[n][e] * a.scale_log2;
        if (cov == Cover::some) {
          const int t = t0 + g + (e >> 1) * 8, key = start + n * 8 + tq * 2 + (e & 1);
          if (!(compact ? compact_pair(pat, t, key) : band_pair(pat, t, key))) x = -INFINITY;
        }
        s[n][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    float ref[2];  // the exponent reference of each row: its running max, 0 while all scores are masked
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      ref[r] = m_new == -INFINITY ? 0.0f : m_new;
      const float rescale = exp2_approx(m[r] - ref[r]);
      m[r] = m_new;
      l[r] *= rescale;
#pragma unroll
      for (int n = 0; n < DH / 8; ++n) {
        o[n][2 * r] *= rescale;
        o[n][2 * r + 1] *= rescale;
      }
    }
#pragma unroll
    for (int n = 0; n < BK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2_approx(s[n][e] - ref[e >> 1]);
        l[e >> 1] += s[n][e];
      }

#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t pf[4];
      to_a_fragment(pf, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int np = 0; np < DH / 16; ++np) {
        uint32_t bf[4];
        ldmatrix_x4_trans(bf, b_address(vt, LD, kk * 16, np * 16, lane));
        mma(o[2 * np], pf, bf[0], bf[1]);
        mma(o[2 * np + 1], pf, bf[2], bf[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int t = t0 + g + 8 * r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    bf16* row = a.out.row(base + t) + h * DH + tq * 2;
#pragma unroll
    for (int n = 0; n < DH / 8; ++n)
      *reinterpret_cast<__nv_bfloat162*>(row + n * 8) = __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    if (tq == 0) a.lse.set(base + t, h, (m[r] + log2f(l[r])) * kLn2);
  }
}

// --- backward -----------------------------------------------------------------------------------------

struct PrologueArgs {
  Mat<bf16> out, dout;
  Mat<float> lse;
  float *lse2, *delta;  // [batch · heads, seq_pad]
  int64_t batch;
  int seq, seq_pad, heads, dh;
};

// One warp per (sequence, head, query < seq_pad): Δ = Σ dO ∘ O and lse · log2 e.
__global__ void backward_prologue_kernel(PrologueArgs a) {
  const int64_t w = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  if (w >= a.batch * a.heads * a.seq_pad) return;
  const int lane = threadIdx.x % 32, t = static_cast<int>(w % a.seq_pad);
  const int64_t bh = w / a.seq_pad, b = bh / a.heads;
  const int h = static_cast<int>(bh % a.heads);
  const int64_t row = b * a.seq + t;
  float s = 0;
  if (t < a.seq)
    for (int c = lane * 2; c < a.dh; c += 64) {
      const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a.out.row(row) + h * a.dh + c));
      const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a.dout.row(row) + h * a.dh + c));
      s += x.x * y.x + x.y * y.y;
    }
  s = warp_sum(s);
  if (lane == 0) {
    a.delta[w] = s;
    a.lse2[w] = t < a.seq ? a.lse(row, h) * kLog2e : INFINITY;
  }
}

struct BackwardArgs {
  Mat<bf16> q, k, v, dout, dk, dv;
  const float *lse2, *delta;                             // [batch · heads, seq_pad]
  float* dq;                                             // f32 [batch · seq, heads · DH], contiguous, accumulated
  float *dk_compact, *dv_compact;                        // f32 [batch · compact_rows, heads · DH], contiguous
  int seq, seq_pad, heads, compact_rows, compact_tiles;  // compact_tiles: the most of any head
  float scale, scale_log2;
};

template <int DH>
constexpr size_t backward_smem_bytes() {
  return static_cast<size_t>(2 * kBwdKeys + 4 * kBwdQueries) * (DH + 8) * sizeof(bf16) +
         static_cast<size_t>(kBwdKeys) * (kBwdQueries + 8) * sizeof(bf16) + 4 * kBwdQueries * sizeof(float);
}

template <int DH>
__global__ void __launch_bounds__(kThreads, 1) flash_backward_kernel(BackwardArgs a, Patterns patterns) {
  constexpr int LD = DH + 8, LDS = kBwdQueries + 8, BK = kBwdKeys, BQ = kBwdQueries;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sk = reinterpret_cast<bf16*>(smem);
  bf16* sv = sk + BK * LD;
  bf16* sq = sv + BK * LD;                                 // two buffers of BQ rows
  bf16* sdo = sq + 2 * BQ * LD;                            // two buffers of BQ rows
  bf16* sds = sdo + 2 * BQ * LD;                           // dSᵀ of the step: BK keys × BQ queries
  float* slse = reinterpret_cast<float*>(sds + BK * LDS);  // two buffers of BQ
  float* sdelta = slse + 2 * BQ;                           // two buffers of BQ
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int b = blockIdx.x / a.heads, h = blockIdx.x % a.heads, T = a.seq;
  const Pattern pat = patterns.head[h];
  const int64_t base = static_cast<int64_t>(b) * T;

  const BackwardPlan plan(pat, T, static_cast<int>(blockIdx.y), a.compact_tiles);
  if (plan.n_steps == 0) return;
  const bool compact = plan.compact;
  const int k0 = plan.k0, step_begin = plan.step_begin, n_steps = plan.n_steps;

  const bf16* q = a.q.p + h * DH;
  const bf16* dout = a.dout.p + h * DH;
  const auto key_rows = [&](const bf16* x, int64_t ld) {
    return [=](int r) -> const bf16* {
      const int j = compact ? compact_row(pat, k0 + r) : k0 + r;
      return j < T ? x + (base + j) * ld : nullptr;
    };
  };
  const auto load_queries = [&](int step, int buf) {
    const int qs = (step_begin + step) * BQ;
    const auto rows = [&](const bf16* x, int64_t ld) {
      return [=](int r) -> const bf16* { return qs + r < T ? x + (base + qs + r) * ld : nullptr; };
    };
    load_tile<DH, BQ>(sq + buf * BQ * LD, rows(q, a.q.ld), q);
    load_tile<DH, BQ>(sdo + buf * BQ * LD, rows(dout, a.dout.ld), dout);
    constexpr int chunks = BQ / 4;  // 16-byte chunks of one statistic
    if (threadIdx.x < 2 * chunks) {
      const int c = threadIdx.x % chunks;
      const bool first = threadIdx.x < chunks;
      const float* src = (first ? a.lse2 : a.delta) + static_cast<int64_t>(blockIdx.x) * a.seq_pad + qs + c * 4;
      cp_async16(smem_u32((first ? slse : sdelta) + buf * BQ + c * 4), src, true);
    }
  };

  load_tile<DH, BK>(sk, key_rows(a.k.p + h * DH, a.k.ld), a.k.p);
  load_tile<DH, BK>(sv, key_rows(a.v.p + h * DH, a.v.ld), a.v.p);
  load_queries(0, 0);
  cp_async_commit();

  const int kw = k0 + warp * 16;  // the warp's first key; this thread holds keys kw + g and kw + g + 8
  const int dq_row = (warp % 4) * 16, dq_col = (warp / 4) * (DH / 2);  // the warp's part of a dQ tile
  float dk_acc[DH / 8][4] = {}, dv_acc[DH / 8][4] = {};
  for (int i = 0; i < n_steps; ++i) {
    cp_async_wait_all();  // step i's queries have landed
    __syncthreads();      // … for every thread, and step i − 1 no longer reads its buffers or dSᵀ
    if (i + 1 < n_steps) {
      load_queries(i + 1, (i + 1) & 1);
      cp_async_commit();
    }
    const int buf = i & 1, qs = (step_begin + i) * BQ;
    const bf16* qt = sq + buf * BQ * LD;
    const bf16* dot = sdo + buf * BQ * LD;
    const Cover cov = cover(pat, compact, kw, kw + 15, qs, qs + BQ - 1);  // queries ≥ T: P = 0 as lse₂ = +∞

    uint32_t pf[BQ / 16][4] = {}, dsf[BQ / 16][4] = {};  // Pᵀ and dSᵀ as A fragments (keys × queries)
    if (cov != Cover::none) {
      float st[BQ / 8][4] = {}, dpt[BQ / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < DH / 16; ++kk) {
        uint32_t ka[4], va[4];
        ldmatrix_x4(ka, a_address(sk, LD, warp * 16, kk * 16, lane));
        ldmatrix_x4(va, a_address(sv, LD, warp * 16, kk * 16, lane));
#pragma unroll
        for (int np = 0; np < BQ / 16; ++np) {
          uint32_t bf[4];
          ldmatrix_x4(bf, bt_address(qt, LD, np * 16, kk * 16, lane));
          mma(st[2 * np], ka, bf[0], bf[1]);
          mma(st[2 * np + 1], ka, bf[2], bf[3]);
          ldmatrix_x4(bf, bt_address(dot, LD, np * 16, kk * 16, lane));
          mma(dpt[2 * np], va, bf[0], bf[1]);
          mma(dpt[2 * np + 1], va, bf[2], bf[3]);
        }
      }
#pragma unroll
      for (int n = 0; n < BQ / 8; ++n) {
        const int col = n * 8 + tq * 2;
        const float2 lse2 = *reinterpret_cast<const float2*>(slse + buf * BQ + col);
        const float2 delta = *reinterpret_cast<const float2*>(sdelta + buf * BQ + col);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float p = exp2_approx(st[n][e] * a.scale_log2 - (e & 1 ? lse2.y : lse2.x));
          if (cov == Cover::some) {
            const int t = qs + col + (e & 1), key = kw + g + (e >> 1) * 8;
            if (!(compact ? compact_pair(pat, t, key) : band_pair(pat, t, key))) p = 0.0f;
          }
          st[n][e] = p;
          dpt[n][e] = p * (dpt[n][e] - (e & 1 ? delta.y : delta.x)) * a.scale;
        }
      }
#pragma unroll
      for (int kk = 0; kk < BQ / 16; ++kk) {
        to_a_fragment(pf[kk], st[2 * kk], st[2 * kk + 1]);
        to_a_fragment(dsf[kk], dpt[2 * kk], dpt[2 * kk + 1]);
      }
    }
    // dSᵀ rows (keys) warp·16 + g, + 8; fragment registers 0–3 are (g, n-tile 2kk), (g + 8, 2kk),
    // (g, 2kk + 1), (g + 8, 2kk + 1).
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        *reinterpret_cast<uint32_t*>(sds + (warp * 16 + g + (e & 1) * 8) * LDS + kk * 16 + (e >> 1) * 8 + tq * 2) =
            dsf[kk][e];
    if (cov != Cover::none) {
#pragma unroll
      for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
        for (int np = 0; np < DH / 16; ++np) {
          uint32_t bf[4];
          ldmatrix_x4_trans(bf, b_address(dot, LD, kk * 16, np * 16, lane));
          mma(dv_acc[2 * np], pf[kk], bf[0], bf[1]);
          mma(dv_acc[2 * np + 1], pf[kk], bf[2], bf[3]);
          ldmatrix_x4_trans(bf, b_address(qt, LD, kk * 16, np * 16, lane));
          mma(dk_acc[2 * np], dsf[kk], bf[0], bf[1]);
          mma(dk_acc[2 * np + 1], dsf[kk], bf[2], bf[3]);
        }
    }
    __syncthreads();  // dSᵀ complete

    // dQ (rows qs + dq_row …, channels dq_col …) += dS · K over the block's keys. A = dS = (dSᵀ)ᵀ:
    // matrices (keys +0, queries +0), (+0, +8), (+8, +0), (+8, +8) of the stored dSᵀ, transposed.
    float dqa[DH / 16][4] = {};
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t af[4];
      ldmatrix_x4_trans(af, smem_u32(sds + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + dq_row + (lane & 8)));
#pragma unroll
      for (int np = 0; np < DH / 32; ++np) {
        uint32_t bf[4];
        ldmatrix_x4_trans(bf, b_address(sk, LD, kk * 16, dq_col + np * 16, lane));
        mma(dqa[2 * np], af, bf[0], bf[1]);
        mma(dqa[2 * np + 1], af, bf[2], bf[3]);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = qs + dq_row + g + 8 * r;
      if (t >= T) continue;
      float* row = a.dq + (base + t) * (static_cast<int64_t>(a.heads) * DH) + h * DH + dq_col + tq * 2;
#pragma unroll
      for (int n = 0; n < DH / 16; ++n)
        atomicAdd(reinterpret_cast<float2*>(row + n * 8), make_float2(dqa[n][2 * r], dqa[n][2 * r + 1]));
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = kw + g + 8 * r;
    if (key >= plan.key_end) continue;
    if (compact) {
      const int64_t offset =
          (static_cast<int64_t>(b) * a.compact_rows + key) * (static_cast<int64_t>(a.heads) * DH) + h * DH + tq * 2;
#pragma unroll
      for (int n = 0; n < DH / 8; ++n) {
        *reinterpret_cast<float2*>(a.dk_compact + offset + n * 8) = make_float2(dk_acc[n][2 * r], dk_acc[n][2 * r + 1]);
        *reinterpret_cast<float2*>(a.dv_compact + offset + n * 8) = make_float2(dv_acc[n][2 * r], dv_acc[n][2 * r + 1]);
      }
    } else {
      bf16* dk = a.dk.row(base + key) + h * DH + tq * 2;
      bf16* dv = a.dv.row(base + key) + h * DH + tq * 2;
#pragma unroll
      for (int n = 0; n < DH / 8; ++n) {
        *reinterpret_cast<__nv_bfloat162*>(dk + n * 8) = __floats2bfloat162_rn(dk_acc[n][2 * r], dk_acc[n][2 * r + 1]);
        *reinterpret_cast<__nv_bfloat162*>(dv + n * 8) = __floats2bfloat162_rn(dv_acc[n][2 * r], dv_acc[n][2 * r + 1]);
      }
    }
  }
}

struct AddCompactArgs {
  Mat<bf16> dk, dv;
  const float *dk_compact, *dv_compact;
  int64_t batch;
  int seq, heads, dh, compact_rows;
};

// dk, dv rows c·D + D − 1 += the compact keys' gradients; one thread per element.
__global__ void add_compact_kernel(AddCompactArgs a, Patterns patterns) {
  const int64_t width = static_cast<int64_t>(a.heads) * a.dh;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= a.batch * a.compact_rows * width) return;
  const int col = static_cast<int>(i % width), c = static_cast<int>(i / width % a.compact_rows);
  const int64_t b = i / width / a.compact_rows;
  const Pattern p = patterns.head[col / a.dh];
  if (p.dilation == 0 || c < first_compact(p) || c >= compact_end(p, a.seq - 1)) return;
  const int64_t row = b * a.seq + compact_row(p, c);
  a.dk.set(row, col, a.dk(row, col) + a.dk_compact[i]);
  a.dv.set(row, col, a.dv(row, col) + a.dv_compact[i]);
}

// --- host side ----------------------------------------------------------------------------------------

bool fits(const Tensor& t) {
  return t.dtype == DType::bf16 && t.device == Device::cuda && reinterpret_cast<uintptr_t>(t.data) % 16 == 0 &&
         t.ld % 8 == 0;
}

// The head width when the fast path applies to a (validated) call with these tensors, else 0. Chunks
// (q_pos0 > 0 or k_len ≠ q_len) run on the general kernel.
int64_t head_width(const AttentionArgs& a, std::initializer_list<const Tensor*> tensors) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size());
  if (a.q_pos0 != 0 || a.k_len != a.q_len || a.q_len > kMaxSeq) return 0;
  if (heads == 0 || heads > kMaxHeads || a.q.cols % heads != 0 || a.lse.dtype != DType::f32) return 0;
  const int64_t dh = a.q.cols / heads;
  if (dh != 64 && dh != 128) return 0;
  for (const Tensor* t : tensors)
    if (!fits(*t)) return 0;
  return dh;
}

Patterns normalise(std::span<const KeySet> head_keys, int64_t seq) {
  Patterns p{};
  for (size_t i = 0; i < head_keys.size(); ++i) {
    const KeySet& s = head_keys[i];
    p.head[i] = s.dilation == 1
                    ? Pattern{0, static_cast<int>(seq), 0}
                    : Pattern{static_cast<int>(s.dilation > seq ? 0 : s.dilation),
                              static_cast<int>(std::min(s.window, seq)), static_cast<int>(std::min(s.sinks, seq))};
  }
  return p;
}

template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
        "cudaFuncSetAttribute (flash attention)");
}

template <int DH>
void launch_forward(const ForwardArgs& a, const Patterns& p, int64_t batch, cudaStream_t stream) {
  constexpr size_t smem = forward_smem_bytes<DH>();
  allow_shared_memory(flash_forward_kernel<DH>, smem);
  const dim3 grid(static_cast<unsigned>(batch * a.heads),
                  static_cast<unsigned>((a.seq + kFwdQueries - 1) / kFwdQueries));
  flash_forward_kernel<DH><<<grid, kThreads, smem, stream>>>(a, p);
}

template <int DH>
void launch_backward(const BackwardArgs& a, const Patterns& p, int64_t batch, cudaStream_t stream) {
  constexpr size_t smem = backward_smem_bytes<DH>();
  allow_shared_memory(flash_backward_kernel<DH>, smem);
  const dim3 grid(static_cast<unsigned>(batch * a.heads),
                  static_cast<unsigned>(a.compact_tiles + (a.seq + kBwdKeys - 1) / kBwdKeys));
  flash_backward_kernel<DH><<<grid, kThreads, smem, stream>>>(a, p);
}

// f32 device memory kept across calls, grown to the largest request.
class Scratch {
 public:
  float* get(size_t floats) {
    if (floats > floats_) {
      if (data_) check(cudaFree(data_), "cudaFree (flash attention scratch)");
      data_ = nullptr;
      check(cudaMalloc(&data_, floats * sizeof(float)), "cudaMalloc (flash attention scratch)");
      floats_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t floats_ = 0;
};

}  // namespace

bool flash_attention_forward(const AttentionArgs& a) {
  const int64_t dh = head_width(a, {&a.q, &a.k, &a.v, &a.out});
  if (dh == 0) return false;
  if (a.q_len == 0) return true;
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), seq = a.q_len;
  const ForwardArgs args{mat<bf16>(a.q),   mat<bf16>(a.k),         mat<bf16>(a.v),
                         mat<bf16>(a.out), mat<float>(a.lse),      static_cast<int>(seq),
                         static_cast<int>(heads), kLog2e / std::sqrt(static_cast<float>(dh))};
  const Patterns patterns = normalise(a.head_keys, seq);
  const auto stream = static_cast<cudaStream_t>(a.stream);
  if (dh == 64)
    launch_forward<64>(args, patterns, a.batch, stream);
  else
    launch_forward<128>(args, patterns, a.batch, stream);
  check_launch(__func__);
  return true;
}

bool flash_attention_backward(const AttentionArgs& a, const AttentionGrads& g) {
  const int64_t dh = head_width(a, {&a.q, &a.k, &a.v, &a.out, &g.dout, &g.dq, &g.dk, &g.dv});
  if (dh == 0) return false;
  if (a.q_len == 0) return true;
  const int64_t batch = a.batch, heads = static_cast<int64_t>(a.head_keys.size()), seq = a.q_len;
  const int64_t seq_pad = (seq + kBwdQueries - 1) / kBwdQueries * kBwdQueries, width = heads * dh;
  const Patterns patterns = normalise(a.head_keys, seq);
  int compact_rows = 0, compact_tiles = 0;
  for (int64_t h = 0; h < heads; ++h) {
    const Pattern& p = patterns.head[h];
    if (p.dilation == 0) continue;
    const int first = first_compact(p), end = compact_end(p, static_cast<int>(seq) - 1);
    if (end <= first) continue;
    compact_rows = std::max(compact_rows, end);
    compact_tiles = std::max(compact_tiles, (end - first / kBwdKeys * kBwdKeys + kBwdKeys - 1) / kBwdKeys);
  }
  const auto stream = static_cast<cudaStream_t>(a.stream);

  static Scratch scratch;
  const size_t dq_size = static_cast<size_t>(a.q.rows * width), stat_size = static_cast<size_t>(batch * heads * seq_pad);
  const size_t compact_size = static_cast<size_t>(batch * compact_rows * width);
  float* dq_acc = scratch.get(dq_size + 2 * stat_size + 2 * compact_size);
  float* lse2 = dq_acc + dq_size;
  float* delta = lse2 + stat_size;
  float* dk_compact = delta + stat_size;
  float* dv_compact = dk_compact + compact_size;
  check(cudaMemsetAsync(dq_acc, 0, dq_size * sizeof(float), stream), "cudaMemsetAsync (flash attention dq)");

  const PrologueArgs pa{mat<bf16>(a.out), mat<bf16>(g.dout), mat<float>(a.lse), lse2, delta, batch,
                        static_cast<int>(seq), static_cast<int>(seq_pad), static_cast<int>(heads),
                        static_cast<int>(dh)};
  backward_prologue_kernel<<<blocks_for(static_cast<int64_t>(stat_size) * 32, kThreads), kThreads, 0, stream>>>(pa);
  check_launch("flash attention backward prologue");

  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  const BackwardArgs ba{mat<bf16>(a.q), mat<bf16>(a.k), mat<bf16>(a.v), mat<bf16>(g.dout), mat<bf16>(g.dk),
                        mat<bf16>(g.dv), lse2, delta, dq_acc, dk_compact, dv_compact, static_cast<int>(seq),
                        static_cast<int>(seq_pad), static_cast<int>(heads), compact_rows, compact_tiles, scale,
                        scale * kLog2e};
  if (dh == 64)
    launch_backward<64>(ba, patterns, batch, stream);
  else
    launch_backward<128>(ba, patterns, batch, stream);
  check_launch(__func__);

  if (compact_size > 0) {
    const AddCompactArgs ca{mat<bf16>(g.dk), mat<bf16>(g.dv), dk_compact, dv_compact, batch, static_cast<int>(seq),
                            static_cast<int>(heads), static_cast<int>(dh), compact_rows};
    add_compact_kernel<<<blocks_for(static_cast<int64_t>(compact_size), kThreads), kThreads, 0, stream>>>(ca, patterns);
    check_launch("flash attention backward epilogue");
  }
  convert(g.dq, Tensor{dq_acc, a.q.rows, width, width, DType::f32, Device::cuda});
  return true;
}

}  // namespace ratplus::cuda
