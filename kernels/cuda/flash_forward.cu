// The tensor-core attention's forward (SPEC §2 step 6, §3), flash-style, for bf16 activations and head
// width 64 or 128, on mma.sync (sm_80 and later); the tile plans are in flash_tiles.h, the PTX helpers in
// flash_common.cuh. On Hopper in an sm_90a build the wgmma forward (hopper_forward.cu) runs instead for
// dense and local key sets; this one serves dilated ones and other GPUs, and is the reference the gpu tests
// hold that one to.
//
// Algorithm. One block of 8 warps per (sequence, head, 128 queries); warp w owns queries 16w … 16w + 15
// and keeps their Q fragments in registers. The block sweeps the 64-key tiles of its ForwardPlan: the
// compact tiles with keys below t_max − W, the sink tile(s), then the band tiles covering
// [t_min − W, t_max] of the full K̃, double-buffered in shared memory by cp.async. Compact key c is row
// c·D + D − 1 of K̃ and Ṽ, loaded in place: a row is dh·2 = 128 or 256 contiguous bytes either way (rows
// of the full K̃ are no closer, K̃ being a column slice). Per tile and warp: S = Q·Kᵀ with mma.sync
// m16n8k16 (bf16 → f32, B fragments by ldmatrix), a per-element mask only where the tile crosses the
// warp's key sets partly (a tile outside all of them is skipped by that warp), online softmax in base 2
// in registers, and O += P·V with P re-packed as bf16 A fragments and V fragments by ldmatrix.trans. One
// online softmax runs over all tiles; O is written in bf16, the natural log-sum-exp in f32.
//
// Cost. k keys per query cost 4·k·dh FLOPs per (query, head): causal dense at T = 4096, dh = 128 is
// 2·T²·dh ≈ 4.3 GFLOP per (sequence, head), a sparse pattern about k/T of that plus its partly masked
// edge tiles. HBM traffic is small beside it (Q, K̃, Ṽ, O once, T·dh·2 bytes each); key tiles are re-read
// per query tile from L2, 128 FLOPs per byte.
//
// Limits. The tensor cores on the mma.sync path (on Hopper well below the wgmma rate), shared-memory
// bandwidth (every warp reads the whole key tile through ldmatrix: 16 FLOPs per byte against the ~32
// that would keep the tensor cores fed) and one exp2 per score on the special-function units. At
// dh = 128 the kernel holds about 230 registers per thread and 102 KB of shared memory: one block, 8
// warps, per multiprocessor, its latency hidden by the prefetch one tile ahead and by independent mma
// chains within each warp.
#include <algorithm>

#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_common.cuh"

namespace ratplus::cuda {

namespace {

template <int DH>
constexpr size_t forward_smem_bytes() {
  return static_cast<size_t>(kFwdQueries + 4 * kFwdKeys) * (DH + 8) * sizeof(bf16);
}

template <int DH>
__global__ void __launch_bounds__(kThreads, 1) flash_forward_kernel(ForwardArgs a, HeadKeys keys) {
  constexpr int LD = DH + 8, BQ = kFwdQueries, BK = kFwdKeys;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* sk = sq + BQ * LD;      // two buffers of BK rows
  bf16* sv = sk + 2 * BK * LD;  // two buffers of BK rows
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int b = blockIdx.x / a.heads, h = blockIdx.x % a.heads, T = a.seq;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * BQ, q1 = min(q0 + BQ, T);  // longest rows first
  const KeySet pat = keys.head[h];
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
        const int j = key_row(pat, compact, start + r);
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

    float rescale[2];
    softmax_scores(s, m, l, rescale, a.scale_log2, cov == Cover::some, [&](int n, int e) {
      return tile_pair(pat, compact, t0 + g + (e >> 1) * 8, start + n * 8 + tq * 2 + (e & 1));
    });
    rescale_rows(o, rescale);

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

  store_forward_rows<DH>(a, o, m, l, base, t0, h);
}

template <int DH>
void launch_forward(const ForwardCall& c) {
  constexpr size_t smem = forward_smem_bytes<DH>();
  allow_shared_memory(flash_forward_kernel<DH>, smem);
  const dim3 grid(static_cast<unsigned>(c.batch * c.args.heads),
                  static_cast<unsigned>((c.args.seq + kFwdQueries - 1) / kFwdQueries));
  flash_forward_kernel<DH><<<grid, kThreads, smem, c.stream>>>(c.args, c.keys);
}

}  // namespace

bool mma_attention_forward(const AttentionArgs& a) {
  return run_forward(a, __func__, launch_forward<64>, launch_forward<128>);
}

// Dilated key sets run on the mma.sync forward on Hopper too: their few compact key tiles per query tile
// leave the wgmma kernel's 128-key steps largely masked, and it measured slower there (docs/PERFORMANCE.md).
bool flash_attention_forward(const AttentionArgs& a) {
  const bool dilated = std::ranges::any_of(a.head_keys, [](const KeySet& s) { return s.dilation > 1; });
  return (!dilated && hopper_attention_forward(a)) || mma_attention_forward(a);
}

}  // namespace ratplus::cuda
