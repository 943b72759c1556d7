// The attention forward on Hopper's warpgroup matrix products (wgmma, sm_90a): the same tile plans, online
// softmax and results as the mma.sync forward (flash_forward.cu), which stays the path for other GPUs and
// the reference the gpu tests hold this one to.
//
// Algorithm. One block of two warpgroups per (sequence, head, 128 queries); warpgroup w owns queries
// 64w … 64w + 63. All 256 threads copy Q once and then the 64-key K̃ and Ṽ tiles of the ForwardPlan
// (compact dilated keys loaded in place, sinks, band) into 128-byte-swizzled shared memory with cp.async,
// double-buffered: tile i + 1 is in flight while tile i is computed. Per tile and warpgroup:
// S[64 × 64] = Q·K̃ᵀ as dh/16 wgmma m64n64k16 with both operands in shared memory; the online softmax in
// registers (base 2, a per-element mask only where the tile crosses the warpgroup's key sets partly, tiles
// outside them skipped); O[64 × dh] += P·Ṽ as 4 wgmma m64n{dh}k16 with P re-packed from the S
// accumulators as register A fragments and Ṽ read transposed (MN-major) from shared memory. The two
// warpgroups share every tile and alternate naturally: one's softmax runs while the other's products do.
//
// Cost. As the mma.sync forward: 4·k·dh FLOPs per (query, head) for k keys, HBM traffic Q, K̃, Ṽ, O once
// (key tiles re-read per query tile from L2). wgmma reads its operands from shared memory itself, so the
// ldmatrix traffic of the mma.sync path (16 FLOPs per shared byte) is gone: 64 queries share each key
// byte.
//
// Limits. Without a producer warp and TMA every thread spends issue slots on cp.async, and each warpgroup
// waits on its own products before the softmax (no overlap of a tile's softmax with the next tile's
// Q·K̃ᵀ within a warpgroup); the exp2 per score on the special-function units. At dh = 128 a thread holds
// the 64 O and 32 S accumulators, and a block 97 KB of shared memory: one block per multiprocessor.
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace ratplus::cuda {

#if defined(RATPLUS_HAVE_SM90A)
namespace {

template <int DH>
struct HopperTiles {
  static constexpr uint32_t q_bytes = kFwdQueries * DH * 2;      // DH / 64 regions of kFwdQueries rows
  static constexpr uint32_t kv_bytes = kFwdKeys * DH * 2;        // DH / 64 regions of kFwdKeys rows
  static constexpr size_t smem = 1024 + q_bytes + 4 * kv_bytes;  // + alignment of the first region
};

// Copies ROWS rows of DH bf16 into the swizzled regions at shared address dst (wgmma.cuh): row r comes from
// src(r), or is zero where src(r) is null (`any` is a valid address to name then).
template <int DH, int ROWS, class Src>
__device__ __forceinline__ void load_swizzled(uint32_t dst, Src src, const bf16* any) {
  constexpr int pieces = DH / 8;
  static_assert(ROWS * pieces % kThreads == 0);
#pragma unroll
  for (int it = 0; it < ROWS * pieces / kThreads; ++it) {
    const int i = it * kThreads + static_cast<int>(threadIdx.x), r = i / pieces, p = i % pieces;
    const bf16* row = src(r);
    cp_async16(dst + (p / 8) * ROWS * 128 + swizzled_offset(r, p % 8), row ? row + p * 8 : any, row != nullptr);
  }
}

template <int DH>
__global__ void __launch_bounds__(kThreads, 1) hopper_forward_kernel(ForwardArgs a, HeadKeys keys) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = HopperTiles<DH>;
  constexpr int BQ = kFwdQueries, BK = kFwdKeys, kWarpgroupRows = 64;
  extern __shared__ unsigned char smem[];
  const uint32_t sq = (smem_u32(smem) + 1023) & ~1023u, sk = sq + L::q_bytes, sv = sk + 2 * L::kv_bytes;
  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
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
    load_swizzled<DH, BK>(sk + buf * L::kv_bytes, rows(k, a.k.ld), k);
    load_swizzled<DH, BK>(sv + buf * L::kv_bytes, rows(v, a.v.ld), v);
  };
  load_swizzled<DH, BQ>(
      sq, [&](int r) -> const bf16* { return q0 + r < T ? q + (base + q0 + r) * a.q.ld : nullptr; }, q);
  load_keys(0, 0);
  cp_async_commit();

  // Q's rows of this warpgroup at k-step kk (16 channels): region kk / 4, 32 bytes per step within it.
  const auto q_desc = [&](int kk) {
    return swizzled_descriptor(sq + (kk / 4) * BQ * 128 + wg * kWarpgroupRows * 128 + (kk % 4) * 32, 16, 1024);
  };
  const auto k_desc = [&](int buf, int kk) {
    return swizzled_descriptor(sk + buf * L::kv_bytes + (kk / 4) * BK * 128 + (kk % 4) * 32, 16, 1024);
  };
  // Ṽ's keys 16kk … 16kk + 15, all DH columns: regions BK · 128 bytes apart.
  const auto v_desc = [&](int buf, int kk) {
    return swizzled_descriptor(sv + buf * L::kv_bytes + kk * 16 * 128, BK * 128, 1024);
  };

  // This thread holds rows t0 + g and t0 + g + 8 of its warp's 16 queries.
  const int wg_t0 = q0 + wg * kWarpgroupRows, t0 = wg_t0 + (threadIdx.x / 32 % 4) * 16;
  float o[DH / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int i = 0; i < plan.n_tiles; ++i) {
    cp_async_wait_all();   // tile i (and at i = 0 Q) has landed
    fence_async_shared();  // … visible to wgmma
    __syncthreads();       // … for every thread, and tile i − 1 is no longer read
    if (i + 1 < plan.n_tiles) {
      load_keys(i + 1, (i + 1) & 1);
      cp_async_commit();
    }
    const bool compact = plan.compact(i);
    const int start = plan.start(i);
    const Cover cov = cover(pat, compact, start, start + BK - 1, wg_t0, wg_t0 + kWarpgroupRows - 1);
    if (cov == Cover::none) continue;  // uniform across the warpgroup
    const int buf = i & 1;

    float s[BK / 8][4];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < DH / 16; ++kk) wgmma_ss_n64(s, q_desc(kk), k_desc(buf, kk), kk > 0);
    wgmma_commit();
    wgmma_wait<0>();

    softmax_step(s, o, m, l, a.scale_log2, cov == Cover::some, [&](int n, int e) {
      return tile_pair(pat, compact, t0 + g + (e >> 1) * 8, start + n * 8 + tq * 2 + (e & 1));
    });
    uint32_t p[BK / 16][4];
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) to_a_fragment(p[kk], s[2 * kk], s[2 * kk + 1]);

    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) wgmma_rs_mn<DH>(o, p[kk], v_desc(buf, kk));
    wgmma_commit();
    wgmma_wait<0>();
  }

  store_forward_rows<DH>(a, o, m, l, base, t0, h);
#endif
}

template <int DH>
void launch_hopper_forward(const ForwardCall& c) {
  constexpr size_t smem = HopperTiles<DH>::smem;
  allow_shared_memory(hopper_forward_kernel<DH>, smem);
  const dim3 grid(static_cast<unsigned>(c.batch * c.args.heads),
                  static_cast<unsigned>((c.args.seq + kFwdQueries - 1) / kFwdQueries));
  hopper_forward_kernel<DH><<<grid, kThreads, smem, c.stream>>>(c.args, c.keys);
}

}  // namespace

bool hopper_attention_available() {
  int device = 0, major = 0, minor = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute");
  return major == 9 && minor == 0;
}

bool hopper_attention_forward(const AttentionArgs& a) {
  if (!hopper_attention_available()) return false;
  const std::optional<ForwardCall> call = forward_call(a);
  if (!call) return false;
  if (a.q_len == 0) return true;
  if (call->dh == 64)
    launch_hopper_forward<64>(*call);
  else
    launch_hopper_forward<128>(*call);
  check_launch(__func__);
  return true;
}

#else  // a build without an sm_90a target

bool hopper_attention_available() { return false; }
bool hopper_attention_forward(const AttentionArgs&) { return false; }

#endif

}  // namespace ratplus::cuda
