// The tensor-core attention's backward (SPEC §2 step 6, §3), flash-style, for bf16 activations and head
// width 64 or 128; the tile plans are in flash_tiles.h, the PTX helpers in flash_common.cuh.
//
// Algorithm. A prologue kernel stores, per (sequence, head, query), Δ = rowsum(dO ∘ O) and the base-2
// log-sum-exp in a [batch·heads, T rounded up to 64] scratch (padding: Δ 0, lse +∞). The main kernel
// runs one block of 8 warps per (sequence, head, 128-key tile) of either kind, band tiles of the full K̃
// or compact tiles (BackwardPlan), warp w owning keys 16w … 16w + 15, and sweeps the 64-query tiles that
// see those keys: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; P = exp2(S·scale·log2 e − lse₂) recomputed;
// dS = P ∘ (dP − Δ)·scale; dV += Pᵀ·dO and dK += dSᵀ·Q accumulate in registers over the whole sweep; dSᵀ
// goes through shared memory for dQ = dS·K, added with vector f32 atomics to an f32 scratch (as
// FlashAttention-2 does: a query row receives from every key tile that sees it, and the atomic-free
// alternative, a second sweep per query tile, recomputes S and dP: 7 products instead of 5). No atomics
// elsewhere: dK and dV of a band tile go straight to dk, dv (each row is written by exactly one block);
// those of a compact tile go to their own f32 buffers, and an epilogue kernel adds them to rows
// c·D + D − 1 of dk, dv, which also hold that row's band gradient. dq is the f32 scratch converted to
// bf16.
//
// Cost. k keys per query cost 10·k·dh FLOPs per (query, head) (five products of 2·k·dh): causal dense
// at T = 4096, dh = 128 is about 10.7 GFLOP per (sequence, head). HBM traffic: Q, K̃, Ṽ, O, dO read and
// dQ, dK, dV written once (T·dh·2 bytes each) plus the f32 dQ scratch (T·dh·4 bytes, accumulated in L2);
// query tiles are re-read per key tile from L2.
//
// Limits. As the forward's (tensor cores on mma.sync, shared-memory bandwidth through ldmatrix, one
// exp2 per score), plus the dQ atomics (one 8-byte add per 2 elements of a 64 × dh tile per step) and two
// barriers per step. At dh = 128 the kernel holds about 250 registers per thread and 155 KB of shared
// memory: one block, 8 warps, per multiprocessor. The scratch is process-wide device memory grown to the
// largest request; the conversion of dq (convert, elementwise.cu) runs on the default stream.
#include <cmath>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_common.cuh"

namespace ratplus::cuda {

namespace {

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
__global__ void __launch_bounds__(kThreads, 1) flash_backward_kernel(BackwardArgs a, HeadKeys keys) {
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
  const KeySet pat = keys.head[h];
  const int64_t base = static_cast<int64_t>(b) * T;

  const BackwardPlan plan(pat, T, static_cast<int>(blockIdx.y), a.compact_tiles);
  if (plan.n_steps == 0) return;
  const bool compact = plan.compact;
  const int k0 = plan.k0, step_begin = plan.step_begin, n_steps = plan.n_steps;

  const bf16* q = a.q.p + h * DH;
  const bf16* dout = a.dout.p + h * DH;
  const auto key_rows = [&](const bf16* x, int64_t ld) {
    return [=](int r) -> const bf16* {
      const int j = key_row(pat, compact, k0 + r);
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
            if (!tile_pair(pat, compact, t, key)) p = 0.0f;
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
__global__ void add_compact_kernel(AddCompactArgs a, HeadKeys keys) {
  const int64_t width = static_cast<int64_t>(a.heads) * a.dh;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= a.batch * a.compact_rows * width) return;
  const int col = static_cast<int>(i % width), c = static_cast<int>(i / width % a.compact_rows);
  const int64_t b = i / width / a.compact_rows;
  const KeySet p = keys.head[col / a.dh];
  if (dilation_of(p) == 0 || c < first_compact(p) || c >= compact_end(p, a.seq - 1)) return;
  const int64_t row = b * a.seq + compact_row(p, c);
  a.dk.set(row, col, a.dk(row, col) + a.dk_compact[i]);
  a.dv.set(row, col, a.dv(row, col) + a.dv_compact[i]);
}

template <int DH>
void launch_backward(const BackwardArgs& a, const HeadKeys& keys, int64_t batch, cudaStream_t stream) {
  constexpr size_t smem = backward_smem_bytes<DH>();
  allow_shared_memory(flash_backward_kernel<DH>, smem);
  const dim3 grid(static_cast<unsigned>(batch * a.heads),
                  static_cast<unsigned>(a.compact_tiles + (a.seq + kBwdKeys - 1) / kBwdKeys));
  flash_backward_kernel<DH><<<grid, kThreads, smem, stream>>>(a, keys);
}

}  // namespace

bool flash_attention_backward(const AttentionArgs& a, const AttentionGrads& g) {
  const int64_t dh = flash_head_width(a, {&a.q, &a.k, &a.v, &a.out, &g.dout, &g.dq, &g.dk, &g.dv});
  if (dh == 0) return false;
  if (a.q_len == 0) return true;
  const int64_t batch = a.batch, heads = static_cast<int64_t>(a.head_keys.size()), seq = a.q_len;
  const int64_t seq_pad = (seq + kBwdQueries - 1) / kBwdQueries * kBwdQueries, width = heads * dh;
  const HeadKeys keys = normalised_head_keys(a.head_keys, seq);
  CompactExtent compact;
  for (int64_t h = 0; h < heads; ++h) compact.add(keys.head[h], static_cast<int>(seq));
  const auto stream = attention_stream(a);

  // The accumulators and statistics live in the caller's workspace (attention_backward_workspace: the compact
  // rows of a sequence are at most its keys).
  const size_t dq_size = static_cast<size_t>(a.q.rows * width), stat_size = static_cast<size_t>(batch * heads * seq_pad);
  const size_t compact_size = static_cast<size_t>(batch * compact.rows * width);
  float* dq_acc = g.workspace.ptr<float>();
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
                        static_cast<int>(seq_pad), static_cast<int>(heads), compact.rows, compact.tiles, scale,
                        scale * kLog2e};
  if (dh == 64)
    launch_backward<64>(ba, keys, batch, stream);
  else
    launch_backward<128>(ba, keys, batch, stream);
  check_launch(__func__);

  if (compact_size > 0) {
    const AddCompactArgs ca{mat<bf16>(g.dk), mat<bf16>(g.dv), dk_compact, dv_compact, batch, static_cast<int>(seq),
                            static_cast<int>(heads), static_cast<int>(dh), compact.rows};
    add_compact_kernel<<<blocks_for(static_cast<int64_t>(compact_size), kThreads), kThreads, 0, stream>>>(ca, keys);
    check_launch("flash attention backward epilogue");
  }
  convert(g.dq, Tensor{dq_acc, a.q.rows, width, width, DType::f32, Device::cuda});
  return true;
}

}  // namespace ratplus::cuda
