// Matrix–vector products against a linear layer's weights: c = alpha · a · Bᵀ + beta · c with a one bf16
// row [1, k] (a decoding step at batch 1), B bf16 [n, k] (the weights, row-major as the model stores them)
// and c bf16 or f32 [1, n]; also with the residual added (linear_add) or the GELU applied (linear_gelu) as
// the sums are written, which saves a step the copy before the one and the element-wise kernel after the
// other. At batch 1 a 7.6B step is nothing but the weight read (15.3 GB), so its speed is the weight stream's.
//
// Algorithm: one warp per R = 2 consecutive weight rows. Each lane streams 16-byte chunks (8 bf16) of its
// rows, U = 4 chunks per row in flight, lane-strided so a warp's loads are whole 512-byte row segments; for
// each chunk it reads the matching 8 values of a (small, so they stay in L1/L2) and accumulates in f32; a
// butterfly of shuffles sums over the warp. Weight loads are marked streaming (evict first): each is used once
// per step.
//
// Bytes and FLOPs: reads n·k·2 bytes of B for 2·n·k FLOPs: memory-bound. What limits it: the weights in flight
// (Little's law at 4.3 TB/s wants about 30 KB per SM; n·U·512 bytes are issued at once over the whole GPU).
// Measured on an H200 (docs/PERFORMANCE.md, kernel bench decode_linear): 91% of the copy rate on the 7.6B
// config's large layers against cuBLASLt's 86–90%, 65% against 50% on the 4096 × 4096 output projection (33.5
// MB: one wave of 256 blocks); with 4 or 8 rows this design fell behind cuBLASLt, so those stay there.
#include "kernels/cuda/matvec.h"

#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace ratplus::cuda {

namespace {

constexpr int kWarps = 8;    // per block
constexpr int R = 2, U = 4;  // weight rows per warp, chunks of each in flight per lane

__device__ __forceinline__ uint4 load_streaming(const bf16* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }

// The 8 bf16 of a chunk as f32 pairs.
__device__ __forceinline__ void unpack(uint4 v, float2 (&out)[4]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[i]));
}

// What the kernel writes with each sum s = a · B[n]ᵀ: c = alpha · s + beta · c; c = residual + s (residual
// may be c); or c = s and act = GELU(s), the GELU of s as rounded into c (what gelu_forward would read).
enum class Epilogue { scale, add, gelu };

template <class Out>
struct MatvecArgs {
  const bf16* a;
  const bf16* b;
  int64_t ldb;
  Out* c;
  const Out* residual;  // add
  Out* act;             // gelu
  int n, k;
  float alpha, beta;    // scale
};

template <class Out, Epilogue E>
__device__ __forceinline__ void finish(const MatvecArgs<Out>& p, int j, float sum) {
  if constexpr (E == Epilogue::scale) {
    p.c[j] = from_float<Out>(p.alpha * sum + (p.beta != 0.0f ? p.beta * to_float(p.c[j]) : 0.0f));
  } else if constexpr (E == Epilogue::add) {
    p.c[j] = from_float<Out>(to_float(p.residual[j]) + sum);
  } else {
    const Out pre = from_float<Out>(sum);
    p.c[j] = pre;
    p.act[j] = from_float<Out>(gelu_of(to_float(pre)));
  }
}

template <class Out, Epilogue E>
__global__ void __launch_bounds__(kWarps * 32) matvec_kernel(MatvecArgs<Out> p) {
  const int lane = threadIdx.x % 32;
  const int n0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (n0 >= p.n) return;
  const bf16* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rows[r] = p.b + static_cast<int64_t>(min(n0 + r, p.n - 1)) * p.ldb;  // past n: recomputed
  const auto load = [&](uint4(&w)[U][R], int k0) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) w[u][r] = k0 + u * 256 < p.k ? load_streaming(rows[r] + k0 + u * 256) : uint4{};
  };
  uint4 w[U][R];
  load(w, lane * 8);
  float acc[R] = {};
  for (int k0 = lane * 8; k0 < p.k; k0 += 256 * U) {
    if (k0 > lane * 8) load(w, k0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = k0 + u * 256;
      if (kk >= p.k) break;
      float2 xf[4];
      unpack(__ldg(reinterpret_cast<const uint4*>(p.a + kk)), xf);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float2 wf[4];
        unpack(w[u][r], wf);
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[r] = fmaf(wf[i].x, xf[i].x, fmaf(wf[i].y, xf[i].y, acc[r]));
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], offset);
    if (lane == r && n0 + r < p.n) finish<Out, E>(p, n0 + r, acc[r]);
  }
}

bool aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && (t.rows == 1 || t.ld % 8 == 0); }

// Whether the kernel takes a · bᵀ: one bf16 row against bf16 weights, 16-byte-aligned rows.
bool applies(const Tensor& a, const Tensor& b) {
  return a.dtype == DType::bf16 && b.dtype == DType::bf16 && a.rows == 1 && a.cols % 8 == 0 && a.cols <= INT32_MAX &&
         b.rows <= INT32_MAX && aligned(a) && aligned(b);
}

template <Epilogue E, class Out>
void launch(MatvecArgs<Out> p) {
  const int64_t warps = (p.n + R - 1) / R;
  const unsigned blocks = static_cast<unsigned>((warps + kWarps - 1) / kWarps);
  matvec_kernel<Out, E><<<blocks, kWarps * 32, 0, cuda_stream()>>>(p);
  check_launch("matvec");
}

template <class Out>
MatvecArgs<Out> args(const Tensor& c, const Tensor& a, const Tensor& b) {
  return {a.ptr<bf16>(), b.ptr<bf16>(), b.ld, static_cast<Out*>(c.data), nullptr, nullptr,
          static_cast<int>(b.rows), static_cast<int>(a.cols), 1.0f, 0.0f};
}

}  // namespace

bool matvec(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  if (trans_a || !trans_b || !applies(a, b)) return false;
  const auto run = [&]<class Out>() {
    MatvecArgs<Out> p = args<Out>(c, a, b);
    p.alpha = static_cast<float>(alpha);
    p.beta = static_cast<float>(beta);
    launch<Epilogue::scale>(p);
  };
  if (c.dtype == DType::bf16)
    run.template operator()<bf16>();
  else if (c.dtype == DType::f32)
    run.template operator()<float>();
  else
    return false;
  return true;
}

bool matvec_add(Tensor y, const Tensor& residual, const Tensor& a, const Tensor& w) {
  if (!applies(a, w) || y.dtype != DType::bf16) return false;
  MatvecArgs<bf16> p = args<bf16>(y, a, w);
  p.residual = residual.ptr<bf16>();
  launch<Epilogue::add>(p);
  return true;
}

bool matvec_gelu(Tensor pre, Tensor act, const Tensor& a, const Tensor& w) {
  if (!applies(a, w) || pre.dtype != DType::bf16) return false;
  MatvecArgs<bf16> p = args<bf16>(pre, a, w);
  p.act = act.ptr<bf16>();
  launch<Epilogue::gelu>(p);
  return true;
}

}  // namespace ratplus::cuda
