// Few-row products against a linear layer's weights: C = alpha · A · Bᵀ + beta · C with A bf16 [m, k],
// m ≤ 8 (the batch of a decoding step), B bf16 [n, k] (the weights, row-major as the model stores them) and
// C bf16 or f32 [m, n]. cuBLASLt's kernels for such products read the weights well below the copy rate; at
// batch 1 a 7.6B step is nothing but this read (15.3 GB), so its speed is the weight stream's.
//
// Algorithm: one warp per R consecutive weight rows. Each lane streams 16-byte chunks (8 bf16) of its R rows,
// U chunks per row in flight, lane-strided so a warp's loads are whole 512-byte row segments; for each chunk
// it reads the matching 8 columns of every A row (small, so they stay in L1/L2) and accumulates the M × R dot
// products in f32; a butterfly of shuffles sums them over the warp and lane m·R + r writes C[m][n0 + r].
// Weight loads are marked streaming (evict first): each is used once per step.
//
// Bytes and FLOPs: reads n·k·2 bytes of B (A and C are m·(k + n) values, negligible at m ≤ 8) for 2·m·n·k
// FLOPs, at most 8 FLOP per byte: memory-bound below about 8 rows (the f32 FMA rate, 67 TFLOP/s, over 4.3 TB/s
// is 16 FLOP/byte, and each chunk also costs its conversions). What limits it: the weights in flight per SM
// (Little's law at 4.3 TB/s wants about 30 KB per SM; N·U·512 bytes are issued at once over the whole GPU).
#include "kernels/cuda/matvec.h"

#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace ratplus::cuda {

namespace {

constexpr int kWarps = 8;  // per block

__device__ __forceinline__ uint4 load_streaming(const bf16* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }

// The 8 bf16 of a chunk as f32 pairs.
__device__ __forceinline__ void unpack(uint4 v, float2 (&out)[4]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[i]));
}

template <int M, int R, int U, class Out>
__global__ void __launch_bounds__(kWarps * 32) matvec_kernel(const bf16* __restrict__ a, int64_t lda,
                                                             const bf16* __restrict__ b, int64_t ldb, Out* c,
                                                             int64_t ldc, int n, int k, float alpha, float beta) {
  const int lane = threadIdx.x % 32;
  const int n0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (n0 >= n) return;
  const bf16* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rows[r] = b + static_cast<int64_t>(min(n0 + r, n - 1)) * ldb;  // past n: recomputed
  float acc[M][R] = {};
  for (int k0 = lane * 8; k0 < k; k0 += 256 * U) {
    uint4 w[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) w[u][r] = k0 + u * 256 < k ? load_streaming(rows[r] + k0 + u * 256) : uint4{};
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = k0 + u * 256;
      if (kk >= k) break;
      float2 wf[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack(w[u][r], wf[r]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float2 xf[4];
        unpack(__ldg(reinterpret_cast<const uint4*>(a + m * lda + kk)), xf);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[m][r] = fmaf(wf[r][i].x, xf[i].x, fmaf(wf[r][i].y, xf[i].y, acc[m][r]));
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], offset);
      if (lane == m * R + r && n0 + r < n) {
        Out* out = c + m * ldc + n0 + r;
        const float old = beta != 0.0f ? beta * to_float(*out) : 0.0f;
        *out = from_float<Out>(alpha * acc[m][r] + old);
      }
    }
}

bool aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.ld % 8 == 0; }

template <int M, class Out>
void launch(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta) {
  // Two rows per warp at one or two A rows (more warps, 4 chunks each in flight); four at more, where each
  // A chunk read from L1 then serves more weight rows.
  constexpr int R = M <= 2 ? 2 : 4, U = M <= 2 ? 4 : 2;
  const int64_t warps = (b.rows + R - 1) / R;
  const unsigned blocks = static_cast<unsigned>((warps + kWarps - 1) / kWarps);
  matvec_kernel<M, R, U, Out><<<blocks, kWarps * 32, 0, cuda_stream()>>>(
      a.ptr<bf16>(), a.ld, b.ptr<bf16>(), b.ld, static_cast<Out*>(c.data), c.ld, static_cast<int>(b.rows),
      static_cast<int>(a.cols), alpha, beta);
  check_launch("matvec");
}

template <class Out>
void launch_rows(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta) {
  switch (a.rows) {
    case 1: return launch<1, Out>(c, a, b, alpha, beta);
    case 2: return launch<2, Out>(c, a, b, alpha, beta);
    case 3: return launch<3, Out>(c, a, b, alpha, beta);
    case 4: return launch<4, Out>(c, a, b, alpha, beta);
    case 5: return launch<5, Out>(c, a, b, alpha, beta);
    case 6: return launch<6, Out>(c, a, b, alpha, beta);
    case 7: return launch<7, Out>(c, a, b, alpha, beta);
    default: return launch<8, Out>(c, a, b, alpha, beta);
  }
}

}  // namespace

bool few_rows_matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha,
                     double beta) {
  if (trans_a || !trans_b || a.dtype != DType::bf16 || b.dtype != DType::bf16) return false;
  if (a.rows < 1 || a.rows > kMaxFewRows || a.cols % 8 != 0 || a.cols > INT32_MAX || b.rows > INT32_MAX) return false;
  if (!aligned(a) || !aligned(b)) return false;
  if (c.dtype == DType::bf16)
    launch_rows<bf16>(c, a, b, static_cast<float>(alpha), static_cast<float>(beta));
  else if (c.dtype == DType::f32)
    launch_rows<float>(c, a, b, static_cast<float>(alpha), static_cast<float>(beta));
  else
    return false;
  return true;
}

}  // namespace ratplus::cuda
