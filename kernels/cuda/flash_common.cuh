// What the tensor-core attention's forwards (flash_forward.cu, hopper_forward.cu) and backward
// (flash_backward.cu) share: the PTX wrappers (cp.async, ldmatrix, mma.sync m16n8k16 bf16 → f32, ex2), the
// fragment layouts of bf16 tiles in shared memory, the tile loads, the forward's online-softmax step and
// output, and on the host the test whether the path applies to a call, the forward's arguments and its dispatch.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>

#include "kernels/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/flash_tiles.h"
#include "kernels/cuda/head_keys.h"

namespace ratplus::cuda {

constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// --- device: PTX wrappers and fragments ----------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, asynchronous; zeros when !valid (src must still be a valid address).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

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

// --- device: the forward's online softmax ---------------------------------------------------------------
// A thread holds rows g and g + 8 of its warp's 16 queries (g = lane / 4) in the accumulator layout of
// mma.sync m16n8 and wgmma m64nN alike: element e of n-tile n is row g + 8·(e / 2), column 8n + 2·(lane % 4)
// + e % 2.

struct ForwardArgs {
  Mat<bf16> q, k, v, out;
  Mat<float> lse;
  int seq, heads;
  float scale_log2;  // scale · log2 e
};

// The maximum (max = true) or the sum of each of the thread's two rows over a tile's scores s, as a tree
// (depth log2(2·NS) rather than a chain of 2·NS dependent operations). Each level halves `part` (W pairs);
// the levels are instantiated one by one, so that every index is a constant and `part` stays in registers.
template <bool max>
__device__ __forceinline__ float reduce_op(float x, float y) {
  return max ? fmaxf(x, y) : x + y;
}
template <bool max, int W, int NS>
__device__ __forceinline__ void reduce_level(float (&part)[NS][2]) {
  if constexpr (W > 0) {
#pragma unroll
    for (int n = 0; n < W; ++n) {
      part[n][0] = reduce_op<max>(part[n][0], part[n + W][0]);
      part[n][1] = reduce_op<max>(part[n][1], part[n + W][1]);
    }
    reduce_level<max, W / 2>(part);
  }
}
template <bool max, int NS>
__device__ __forceinline__ void reduce_rows(const float (&s)[NS][4], float (&out)[2]) {
  static_assert((NS & (NS - 1)) == 0, "a power of two of n-tiles");
  float part[NS][2];
#pragma unroll
  for (int n = 0; n < NS; ++n) {
    part[n][0] = reduce_op<max>(s[n][0], s[n][1]);
    part[n][1] = reduce_op<max>(s[n][2], s[n][3]);
  }
  reduce_level<max, NS / 2>(part);
  out[0] = part[0][0];
  out[1] = part[0][1];
}

// One online-softmax step in base 2 over a tile of scores s (NS n-tiles): sets the pairs that keep(n, e)
// rejects to −∞ when `masked`, and leaves s = 2^(scale · score − reference) with its row sums added to the
// running sums l, rescaled by the change of the running maxima m (in scaled units). The output's rows must
// be rescaled by the same factors (rescale_rows), which the step returns.
template <int NS, class Keep>
__device__ __forceinline__ void softmax_scores(float (&s)[NS][4], float (&m)[2], float (&l)[2], float (&rescale)[2],
                                               float scale_log2, bool masked, Keep keep) {
  if (masked)  // one uniform branch; a tile inside every key set runs straight through
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = keep(n, e) ? s[n][e] : -INFINITY;
  float mx[2], sum[2];  // of the unscaled scores (the scale is positive)
  reduce_rows<true>(s, mx);
  float ref[2];  // the exponent reference of each row: its running max, 0 while all scores are masked
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float m_new = fmaxf(m[r], mx[r] * scale_log2);
    ref[r] = m_new == -INFINITY ? 0.0f : m_new;
    rescale[r] = exp2_approx(m[r] - ref[r]);
    m[r] = m_new;
  }
#pragma unroll
  for (int n = 0; n < NS; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = exp2_approx(fmaf(s[n][e], scale_log2, -ref[e >> 1]));
  reduce_rows<false>(s, sum);
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = fmaf(l[r], rescale[r], sum[r]);
}

template <int NO>
__device__ __forceinline__ void rescale_rows(float (&o)[NO][4], const float (&rescale)[2]) {
#pragma unroll
  for (int n = 0; n < NO; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] *= rescale[e >> 1];
}

// Writes rows t0 + g and t0 + g + 8 (those below T) of head h of sequence row `base`: O / l in bf16 and the
// natural log-sum-exp.
template <int DH>
__device__ __forceinline__ void store_forward_rows(const ForwardArgs& a, const float (&o)[DH / 8][4],
                                                   const float (&m)[2], float (&l)[2], int64_t base, int t0, int h) {
  const int lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int t = t0 + g + 8 * r;
    if (t >= a.seq) continue;
    const float inv = 1.0f / l[r];
    bf16* row = a.out.row(base + t) + h * DH + tq * 2;
#pragma unroll
    for (int n = 0; n < DH / 8; ++n)
      *reinterpret_cast<__nv_bfloat162*>(row + n * 8) = __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    if (tq == 0) a.lse.set(base + t, h, (m[r] + log2f(l[r])) * kLn2);
  }
}

// --- host ---------------------------------------------------------------------------------------------

inline bool flash_fits(const Tensor& t) {
  return t.dtype == DType::bf16 && t.device == Device::cuda && reinterpret_cast<uintptr_t>(t.data) % 16 == 0 &&
         t.ld % 8 == 0;
}

// The head width when the tensor-core path applies to a (validated) call with these bf16 tensors, else 0.
// Chunks (q_pos0 > 0 or k_len ≠ q_len) run on the general kernel.
inline int64_t flash_head_width(const AttentionArgs& a, std::initializer_list<const Tensor*> tensors) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size());
  if (a.key_layout != KeyLayout::sequence || a.q_pos0 != 0 || a.k_len != a.q_len || a.q_len > kMaxSeq) return 0;
  if (heads == 0 || heads > kMaxHeads || a.q.cols % heads != 0 || a.lse.dtype != DType::f32) return 0;
  const int64_t dh = a.q.cols / heads;
  if (dh != 64 && dh != 128) return 0;
  for (const Tensor* t : tensors)
    if (!flash_fits(*t)) return 0;
  return dh;
}

// The key sets normalised for sequences of `seq` keys (flash_tiles.h).
inline HeadKeys normalised_head_keys(std::span<const KeySet> head_keys, int64_t seq) {
  return pack_head_keys(head_keys, [seq](const KeySet& s) { return normalised(s, seq); });
}

// A forward call as the kernels take it: the arguments, the normalised key sets, the head width and batch.
struct ForwardCall {
  ForwardArgs args;
  HeadKeys keys;
  int64_t dh, batch;
  cudaStream_t stream;
};

// The call when the tensor-core path applies to it (flash_head_width), else nothing.
inline std::optional<ForwardCall> forward_call(const AttentionArgs& a) {
  const int64_t dh = flash_head_width(a, {&a.q, &a.k, &a.v, &a.out});
  if (dh == 0) return std::nullopt;
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), seq = a.q_len;
  const ForwardArgs args{mat<bf16>(a.q),   mat<bf16>(a.k),    mat<bf16>(a.v),
                         mat<bf16>(a.out), mat<float>(a.lse), static_cast<int>(seq),
                         static_cast<int>(heads), kLog2e / std::sqrt(static_cast<float>(dh))};
  return ForwardCall{args, normalised_head_keys(a.head_keys, seq), dh, a.batch, attention_stream(a)};
}

// A forward entry point: runs launch64 or launch128 on the call for its head width and returns true, or
// false, having done nothing, where the tensor-core path does not apply (forward_call).
inline bool run_forward(const AttentionArgs& a, const char* name, void (*launch64)(const ForwardCall&),
                        void (*launch128)(const ForwardCall&)) {
  const std::optional<ForwardCall> call = forward_call(a);
  if (!call) return false;
  if (a.q_len == 0) return true;
  (call->dh == 64 ? launch64 : launch128)(*call);
  check_launch(name);
  return true;
}

template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
        "cudaFuncSetAttribute (flash attention)");
}

}  // namespace ratplus::cuda
