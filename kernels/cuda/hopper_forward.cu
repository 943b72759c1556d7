// The attention forward on Hopper's warpgroup matrix products (wgmma, sm_90a): the same tile plans, online
// softmax and results as the mma.sync forward (flash_forward.cu), which stays the path for other GPUs and
// the reference the gpu tests hold this one to.
//
// Algorithm. One block of two warpgroups per (sequence, head, 128 queries); warpgroup w owns queries
// 64w … 64w + 63. All 256 threads copy Q once and then the key tiles of the ForwardPlan (compact dilated
// keys loaded in place, sinks, band), two 64-key tiles per 128-key step, into 128-byte-swizzled shared
// memory with cp.async, two steps ahead of the products. Per step and warpgroup: S[64 × 128] = Q·K̃ᵀ as
// dh/16 wgmma m64n128k16 with both operands in shared memory; the online softmax in registers (base 2,
// the maxima and sums as trees, a per-element mask only where a tile crosses the warpgroup's key sets
// partly); O[64 × dh] += P·Ṽ as 8 wgmma m64n{dh}k16 with P re-packed from the S accumulators as register
// A fragments and Ṽ read transposed (MN-major). Step j issues the scores of step j + 1 and the product of
// step j together and runs the softmax of step j + 1 while that product does (FlashAttention-3's
// intra-warpgroup overlap).
//
// Cost. As the mma.sync forward: 4·k·dh FLOPs per (query, head) for k keys, HBM traffic Q, K̃, Ṽ, O once
// (key tiles re-read per query tile from L2). wgmma reads its operands from shared memory itself, so the
// ldmatrix traffic of the mma.sync path (16 FLOPs per shared byte) is gone: 64 queries share each key
// byte.
//
// Limits. Without a producer warp and TMA every thread spends issue slots on cp.async and the two
// warpgroups meet at a block barrier every step, so one's softmax cannot be scheduled against the other's
// products (no ping-pong); the exp2 per score on the special-function units. A 64-key tile outside one
// warpgroup's keys (one per diagonal) is computed masked. At dh = 128 a thread holds the 64 O and 64 S
// accumulators and 32 P registers (222 registers), a block 193 KB of shared memory: one block per
// multiprocessor.
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace ratplus::cuda {

#if defined(RATPLUS_HAVE_SM90A)
namespace {

// A step takes two 64-key tiles of the ForwardPlan, 2j and 2j + 1, as one 128-key tile (rows 0 … 63 and
// 64 … 127; the second empty past the plan's end). Shared memory: Q, two K̃ buffers and three Ṽ buffers;
// step j's K̃ is in buffer j mod 2 and its Ṽ in buffer j mod 3: when step j + 2 is loaded (at the start of
// step j), Q·K̃ⱼᵀ has completed in both warpgroups but P·Ṽ of step j − 1 may still run.
constexpr int kStepKeys = 2 * kFwdKeys;

template <int DH>
struct HopperTiles {
  static constexpr uint32_t q_bytes = kFwdQueries * DH * 2;      // DH / 64 regions of kFwdQueries rows
  static constexpr uint32_t kv_bytes = kStepKeys * DH * 2;       // DH / 64 regions of kStepKeys rows
  static constexpr size_t smem = 1024 + q_bytes + 5 * kv_bytes;  // + alignment of the first region
};

// Copies ROWS rows of DH bf16 from each of N matrices into the swizzled regions (wgmma.cuh) at shared
// addresses dst[m]: row r from row row(r) of src[m] (leading dimension ld[m]), or zeros where row(r) < 0.
template <int DH, int ROWS, int N, class Row>
__device__ __forceinline__ void load_swizzled(const uint32_t (&dst)[N], const bf16* const (&src)[N],
                                              const int64_t (&ld)[N], Row row) {
  constexpr int pieces = DH / 8;
  static_assert(ROWS * pieces % kThreads == 0);
#pragma unroll
  for (int it = 0; it < ROWS * pieces / kThreads; ++it) {
    const int i = it * kThreads + static_cast<int>(threadIdx.x), r = i / pieces, p = i % pieces;
    const int64_t j = row(r);
    const uint32_t offset = (p / 8) * ROWS * 128 + swizzled_offset(r, p % 8);
#pragma unroll
    for (int m = 0; m < N; ++m) cp_async16(dst[m] + offset, j < 0 ? src[m] : src[m] + j * ld[m] + p * 8, j >= 0);
  }
}

template <int DH>
__global__ void __launch_bounds__(kThreads, 1) hopper_forward_kernel(ForwardArgs a, HeadKeys keys) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = HopperTiles<DH>;
  constexpr int BQ = kFwdQueries, BK = kStepKeys, kWarpgroupRows = 64;
  extern __shared__ unsigned char smem[];
  const uint32_t sq = (smem_u32(smem) + 1023) & ~1023u, sk = sq + L::q_bytes, sv = sk + 2 * L::kv_bytes;
  const int wg = threadIdx.x / 128, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int b = blockIdx.x / a.heads, h = blockIdx.x % a.heads, T = a.seq;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * BQ, q1 = min(q0 + BQ, T);  // longest rows first
  const int wg_t0 = q0 + wg * kWarpgroupRows;  // this warpgroup's first query
  const KeySet pat = keys.head[h];
  const int64_t base = static_cast<int64_t>(b) * T;
  const bf16* q = a.q.p + h * DH;
  const bf16* k = a.k.p + h * DH;
  const bf16* v = a.v.p + h * DH;

  const ForwardPlan plan(pat, q0, q1);
  const int n_steps = (plan.n_tiles + 1) / 2;
  // The plan tile of half `half` of step j: whether it exists, is compact, and its first key.
  struct Half {
    bool exists, compact;
    int start;
  };
  const auto half_of = [&](int j, int half) {
    const int i = 2 * j + half;
    return i < plan.n_tiles ? Half{true, plan.compact(i), plan.start(i)} : Half{false, false, 0};
  };
  const auto load_keys = [&](int j) {
    const Half h0 = half_of(j, 0), h1 = half_of(j, 1);
    load_swizzled<DH, BK>({sk + (j & 1) * L::kv_bytes, sv + (j % 3) * L::kv_bytes}, {k, v}, {a.k.ld, a.v.ld},
                          [&](int r) -> int64_t {
                            const bool second = r >= kFwdKeys;  // selected by value: no reference to either
                            if (!(second ? h1.exists : h0.exists)) return -1;
                            const int key = key_row(pat, second ? h1.compact : h0.compact,
                                                    (second ? h1.start : h0.start) + r % kFwdKeys);
                            return key < T ? base + key : -1;
                          });
    cp_async_commit();
  };
  load_swizzled<DH, BQ>({sq}, {q}, {a.q.ld}, [&](int r) -> int64_t { return q0 + r < T ? base + q0 + r : -1; });
  load_keys(0);
  if (n_steps > 1) {
    load_keys(1);
    cp_async_wait<1>();
  } else {
    cp_async_wait_all();
  }

  // The operands' descriptors: a base descriptor plus the byte offset / 16 (the offsets stay inside
  // shared memory, so the address field does not carry). Q's rows of this warpgroup at k-step kk (16
  // channels): region kk / 4, 32 bytes per step within it; K̃ alike; Ṽ's keys 16kk … 16kk + 15, all DH
  // columns: regions BK · 128 bytes apart.
  const uint64_t q_base = swizzled_descriptor(sq + wg * kWarpgroupRows * 128, 16, 1024),
                 k_base = swizzled_descriptor(sk, 16, 1024), v_base = swizzled_descriptor(sv, BK * 128, 1024);
  const auto q_desc = [&](int kk) { return q_base + (((kk / 4) * BQ * 128 + (kk % 4) * 32) >> 4); };
  const auto k_desc = [&](int j, int kk) {
    return k_base + (((j & 1) * L::kv_bytes + (kk / 4) * BK * 128 + (kk % 4) * 32) >> 4);
  };
  const auto v_desc = [&](int j, int kk) { return v_base + (((j % 3) * L::kv_bytes + kk * 16 * 128) >> 4); };
  const auto issue_scores = [&](float(&s)[BK / 8][4], int j) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < DH / 16; ++kk) wgmma_ss<BK>(s, q_desc(kk), k_desc(j, kk), kk > 0);
    wgmma_commit();
  };

  // This thread holds rows t0 + g and t0 + g + 8 of its warp's 16 queries.
  const int t0 = wg_t0 + (threadIdx.x / 32 % 4) * 16;
  float o[DH / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, rescale[2];
  float s[BK / 8][4];
  uint32_t p[BK / 16][4];
  // The softmax of step j's scores s into P. A half outside this warpgroup's key sets (or past the plan's
  // end) is masked whole: it adds nothing, and both warpgroups keep the same sequence of products.
  const auto softmax = [&](int j) {
    const Half h0 = half_of(j, 0), h1 = half_of(j, 1);
    const auto inside = [&](const Half& t) {
      return t.exists &&
             cover(pat, t.compact, t.start, t.start + kFwdKeys - 1, wg_t0, wg_t0 + kWarpgroupRows - 1) == Cover::all;
    };
    softmax_scores(s, m, l, rescale, a.scale_log2, !(inside(h0) && inside(h1)), [&](int n, int e) {
      const Half t = n < kFwdKeys / 8 ? h0 : h1;  // n is a constant of the unrolled loops
      return t.exists &&
             tile_pair(pat, t.compact, t0 + g + (e >> 1) * 8, t.start + n % (kFwdKeys / 8) * 8 + tq * 2 + (e & 1));
    });
  };
  const auto issue_product = [&](int j) {  // O = O · rescale + P·Ṽⱼ
    // The factors are exactly 1 where a row's maximum did not grow, mostly so after the first steps.
    if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) rescale_rows(o, rescale);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) wgmma_rs_mn<DH>(o, p[kk], v_desc(j, kk));
    wgmma_commit();
  };
  const auto to_p = [&] {
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) to_a_fragment(p[kk], s[2 * kk], s[2 * kk + 1]);
  };

  fence_async_shared();
  __syncthreads();
  issue_scores(s, 0);
  wgmma_wait<0>();
  softmax(0);
  to_p();
  // Step j: the scores of step j + 1 and the product of step j are issued together; the softmax of step
  // j + 1 runs while the product does.
  for (int j = 0; j + 1 < n_steps; ++j) {
    cp_async_wait_all();   // step j + 1 has landed
    fence_async_shared();  // … visible to wgmma
    __syncthreads();       // … for every thread, and K̃ⱼ and Ṽⱼ₋₁ are no longer read
    if (j + 2 < n_steps) load_keys(j + 2);
    issue_scores(s, j + 1);
    issue_product(j);
    wgmma_wait<1>();  // the scores
    softmax(j + 1);
    wgmma_wait<0>();  // the product
    to_p();
  }
  issue_product(n_steps - 1);
  wgmma_wait<0>();

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
  return hopper_attention_available() &&
         run_forward(a, __func__, launch_hopper_forward<64>, launch_hopper_forward<128>);
}

#else  // a build without an sm_90a target

bool hopper_attention_available() { return false; }
bool hopper_attention_forward(const AttentionArgs&) { return false; }

#endif

}  // namespace ratplus::cuda
