// Gated linear recurrence on the GPU (f32 or bf16 activations, f32 state and math) as a chunked scan over
// time. Both directions are a scan h ← a·h + u for keys and values in processing order — forward: t
// ascending, h = k̃ or ṽ, u = (1 − a)·x; backward: t descending, h = a_t λ_t (the carry into step t − 1),
// u = a·∂L/∂k̃_t or a·∂L/∂ṽ_t — so one block layout serves both.
//
// A block of 16 warps owns one sequence and 32 consecutive channels (lane = channel, so every access is a
// coalesced row segment of a [B·T, channels] matrix with any row stride) and walks the whole sequence in
// block steps of 16 chunks, one chunk of L time steps per warp:
//   1. each thread scans its chunk from a zero state in registers and leaves the chunk's summary (decay
//      Π a and end state) in shared memory;
//   2. warp 0 scans the 16 summaries from the state carried from the previous block step (the initial
//      state, or zero, before the first): each chunk's incoming state, and the carry for the next block step;
//   3. each thread rescans its chunk from the true incoming state, still in registers, and writes the
//      outputs; within a chunk this is exactly the sequential recurrence.
// Every input is read once and every output written once, and the next block step's inputs are loaded
// into registers while the current one is computed. Steps past the end of the sequence come last in
// processing order, so they feed no stored output.
//
// Per element (one sequence, channel and time step): the forward reads k, v, g and writes k̃, ṽ — 5 values,
// 20 B in f32 or 10 B in bf16 — for about 15 FLOPs (one sigmoid, the decay product, two passes over two
// states); the backward reads g, ∂k̃, ∂ṽ, k, v, k̃_{t−1}, ṽ_{t−1} and writes ∂k, ∂v, ∂g — 10 values, 40 or
// 20 B — for about 20 FLOPs. At ~1 FLOP per byte or less this is memory-bound: the target is HBM bandwidth.
//
// What limits it: parallelism is batch × ⌈channels / 32⌉ blocks of 512 threads (up to 128 registers each:
// one block per SM), 128 at B = 2, d = 2048 on the 132 SMs of an H200. Each SM keeps one block step of
// loads in flight (forward L = 8: 48 KiB in f32, 24 KiB in bf16; backward L = 4: 56 or 28 KiB): over a
// ~1 µs loaded memory latency, 128 SMs ask for 3–7 TB/s of reads, more than the HBM delivers once the
// writes are added, so the bound is bandwidth. With fewer blocks than SMs (batch × channels well under
// ~4000) the GPU is not filled; a sequence's time is not split across blocks.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kLanes = 32;  // channels per block, one per lane
constexpr int kWarps = 16;  // chunks per block step, one per warp
constexpr int kThreads = kLanes * kWarps;
constexpr int kForwardChunk = 8;   // time steps per chunk
constexpr int kBackwardChunk = 4;  // the backward holds 7 inputs per step in registers, the forward 3

// Chunk summaries of one block step (the chunk maps a state h to end + decay·h), and the state entering
// each chunk.
struct Chunks {
  float decay[kWarps][kLanes], end_k[kWarps][kLanes], end_v[kWarps][kLanes];
  float in_k[kWarps][kLanes], in_v[kWarps][kLanes];
};

// Run by warp 0: the incoming state of every chunk of the block step, starting from the carried state
// (carry_k, carry_v), which it advances to the block step's end.
__device__ void scan_chunks(Chunks& s, int lane, float& carry_k, float& carry_v) {
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    s.in_k[w][lane] = carry_k;
    s.in_v[w][lane] = carry_v;
    carry_k = s.end_k[w][lane] + s.decay[w][lane] * carry_k;
    carry_v = s.end_v[w][lane] + s.decay[w][lane] * carry_v;
  }
}

// The block's sequence, channel and thread position: block index = sequence · groups + channel group.
struct Place {
  int lane, warp;
  int64_t c, b, row0;  // channel; sequence; row of t = 0
  bool active;      // c < channels
  __device__ Place(int64_t seq, int64_t channels) {
    const int64_t groups = (channels + kLanes - 1) / kLanes;
    lane = static_cast<int>(threadIdx.x) % kLanes;
    warp = static_cast<int>(threadIdx.x) / kLanes;
    c = blockIdx.x % groups * kLanes + lane;
    b = blockIdx.x / groups;
    row0 = b * seq;
    active = c < channels;
  }
};

template <class A, int L>
struct ForwardInputs {
  A g[L], k[L], v[L];
  // Time steps of this thread's chunk in block step `step`; zero past the end.
  __device__ void load(const Mat<A>& gm, const Mat<A>& km, const Mat<A>& vm, const Place& p, int64_t seq,
                       int64_t step) {
#pragma unroll
    for (int j = 0; j < L; ++j) {
      const int64_t t = (step * kWarps + p.warp) * L + j, r = p.row0 + t;
      const bool ok = p.active && t < seq;
      g[j] = ok ? gm.row(r)[p.c] : A{};
      k[j] = ok ? km.row(r)[p.c] : A{};
      v[j] = ok ? vm.row(r)[p.c] : A{};
    }
  }
};

// The f32 state of every sequence before its first row and after its last (null pointers = none).
struct StateArgs {
  Mat<float> initial_k, initial_v, final_k, final_v;
};

template <class A>
__global__ void __launch_bounds__(kThreads, 1)
    recurrence_forward_kernel(Mat<A> ko, Mat<A> vo, Mat<A> k, Mat<A> v, Mat<A> g, StateArgs state, int64_t seq,
                              int64_t channels) {
  constexpr int L = kForwardChunk;
  __shared__ Chunks chunks;
  const Place p(seq, channels);
  const int64_t steps = (seq + kWarps * L - 1) / (kWarps * L);
  ForwardInputs<A, L> next;
  next.load(g, k, v, p, seq, 0);
  // warp 0: the state at the end of the previous block step
  const bool has_initial = state.initial_k.p != nullptr && p.active;
  float carry_k = has_initial ? state.initial_k(p.b, p.c) : 0.0f;
  float carry_v = has_initial ? state.initial_v(p.b, p.c) : 0.0f;
  for (int64_t step = 0; step < steps; ++step) {
    float a[L], x[L], y[L];
#pragma unroll
    for (int j = 0; j < L; ++j) {
      a[j] = sigmoid(to_float(next.g[j]));
      x[j] = to_float(next.k[j]);
      y[j] = to_float(next.v[j]);
    }
    if (step + 1 < steps) next.load(g, k, v, p, seq, step + 1);

    float decay = 1, hk = 0, hv = 0;
#pragma unroll
    for (int j = 0; j < L; ++j) {
      decay *= a[j];
      hk = a[j] * hk + (1.0f - a[j]) * x[j];
      hv = a[j] * hv + (1.0f - a[j]) * y[j];
    }
    chunks.decay[p.warp][p.lane] = decay;
    chunks.end_k[p.warp][p.lane] = hk;
    chunks.end_v[p.warp][p.lane] = hv;
    __syncthreads();
    if (p.warp == 0) scan_chunks(chunks, p.lane, carry_k, carry_v);
    __syncthreads();

    hk = chunks.in_k[p.warp][p.lane];
    hv = chunks.in_v[p.warp][p.lane];
#pragma unroll
    for (int j = 0; j < L; ++j) {
      hk = a[j] * hk + (1.0f - a[j]) * x[j];
      hv = a[j] * hv + (1.0f - a[j]) * y[j];
      const int64_t t = (step * kWarps + p.warp) * L + j;
      if (p.active && t < seq) {
        ko.set(p.row0 + t, p.c, hk);
        vo.set(p.row0 + t, p.c, hv);
        if (t == seq - 1 && state.final_k.p != nullptr) {
          state.final_k.set(p.b, p.c, hk);
          state.final_v.set(p.b, p.c, hv);
        }
      }
    }
  }
}

template <class A, int L>
struct BackwardInputs {
  A g[L], dko[L], dvo[L], k[L], v[L], prev_k[L], prev_v[L];  // prev: k̃_{t−1}, ṽ_{t−1}, zero at t = 0
  // Processing position q = (step · kWarps + warp) · L + j is time t = seq − 1 − q; zero before t = 0.
  __device__ void load(const Mat<A>& gm, const Mat<A>& dkom, const Mat<A>& dvom, const Mat<A>& kom, const Mat<A>& vom,
                       const Mat<A>& km, const Mat<A>& vm, const Place& p, int64_t seq, int64_t step) {
#pragma unroll
    for (int j = 0; j < L; ++j) {
      const int64_t t = seq - 1 - ((step * kWarps + p.warp) * L + j), r = p.row0 + t;
      const bool ok = p.active && t >= 0, has_prev = ok && t > 0;
      g[j] = ok ? gm.row(r)[p.c] : A{};
      dko[j] = ok ? dkom.row(r)[p.c] : A{};
      dvo[j] = ok ? dvom.row(r)[p.c] : A{};
      k[j] = ok ? km.row(r)[p.c] : A{};
      v[j] = ok ? vm.row(r)[p.c] : A{};
      prev_k[j] = has_prev ? kom.row(r - 1)[p.c] : A{};
      prev_v[j] = has_prev ? vom.row(r - 1)[p.c] : A{};
    }
  }
};

// The adjoint uses the stored k̃_{t−1}, ṽ_{t−1} (as rounded to the activation type).
template <class A>
__global__ void __launch_bounds__(kThreads, 1)
    recurrence_backward_kernel(Mat<A> dk, Mat<A> dv, Mat<A> dg, Mat<A> dko, Mat<A> dvo, Mat<A> ko, Mat<A> vo, Mat<A> k,
                               Mat<A> v, Mat<A> g, int64_t seq, int64_t channels) {
  constexpr int L = kBackwardChunk;
  __shared__ Chunks chunks;
  const Place p(seq, channels);
  const int64_t steps = (seq + kWarps * L - 1) / (kWarps * L);
  BackwardInputs<A, L> next;
  next.load(g, dko, dvo, ko, vo, k, v, p, seq, 0);
  float carry_k = 0, carry_v = 0;  // warp 0: a_{t+1} λ_{t+1} after the previous block step
  for (int64_t step = 0; step < steps; ++step) {
    float a[L], dh_k[L], dh_v[L], x[L], y[L], xp[L], yp[L];  // dh: the given ∂L/∂k̃_t, ∂L/∂ṽ_t
#pragma unroll
    for (int j = 0; j < L; ++j) {
      a[j] = sigmoid(to_float(next.g[j]));
      dh_k[j] = to_float(next.dko[j]);
      dh_v[j] = to_float(next.dvo[j]);
      x[j] = to_float(next.k[j]);
      y[j] = to_float(next.v[j]);
      xp[j] = to_float(next.prev_k[j]);
      yp[j] = to_float(next.prev_v[j]);
    }
    if (step + 1 < steps) next.load(g, dko, dvo, ko, vo, k, v, p, seq, step + 1);

    float decay = 1, ck = 0, cv = 0;
#pragma unroll
    for (int j = 0; j < L; ++j) {
      decay *= a[j];
      ck = a[j] * (dh_k[j] + ck);
      cv = a[j] * (dh_v[j] + cv);
    }
    chunks.decay[p.warp][p.lane] = decay;
    chunks.end_k[p.warp][p.lane] = ck;
    chunks.end_v[p.warp][p.lane] = cv;
    __syncthreads();
    if (p.warp == 0) scan_chunks(chunks, p.lane, carry_k, carry_v);
    __syncthreads();

    ck = chunks.in_k[p.warp][p.lane];
    cv = chunks.in_v[p.warp][p.lane];
#pragma unroll
    for (int j = 0; j < L; ++j) {
      const float lk = dh_k[j] + ck, lv = dh_v[j] + cv;
      const int64_t t = seq - 1 - ((step * kWarps + p.warp) * L + j);
      if (p.active && t >= 0) {
        const float da = lk * (xp[j] - x[j]) + lv * (yp[j] - y[j]);
        dk.set(p.row0 + t, p.c, (1.0f - a[j]) * lk);
        dv.set(p.row0 + t, p.c, (1.0f - a[j]) * lv);
        dg.set(p.row0 + t, p.c, da * a[j] * (1.0f - a[j]));
      }
      ck = a[j] * lk;
      cv = a[j] * lv;
    }
  }
}

unsigned blocks(int64_t batch, int64_t channels) {
  return static_cast<unsigned>(batch * ((channels + kLanes - 1) / kLanes));
}

}  // namespace

void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g, int64_t batch,
                        const RecurrenceState& initial, const RecurrenceState& final_state) {
  const int64_t seq = k.rows / batch, channels = k.cols;
  if (batch * channels == 0) return;
  const StateArgs state{mat<float>(initial.k), mat<float>(initial.v), mat<float>(final_state.k),
                        mat<float>(final_state.v)};
  with_activation_type(k.dtype, __func__, [&]<class A>() {
    recurrence_forward_kernel<A><<<blocks(batch, channels), kThreads, 0, cuda_stream()>>>(
        mat<A>(k_out), mat<A>(v_out), mat<A>(k), mat<A>(v), mat<A>(g), state, seq, channels);
  });
  check_launch(__func__);
}

void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                         int64_t batch) {
  const int64_t seq = k.rows / batch, channels = k.cols;
  if (batch * channels == 0) return;
  with_activation_type(k.dtype, __func__, [&]<class A>() {
    recurrence_backward_kernel<A><<<blocks(batch, channels), kThreads, 0, cuda_stream()>>>(
        mat<A>(dk), mat<A>(dv), mat<A>(dg), mat<A>(dk_out), mat<A>(dv_out), mat<A>(k_out), mat<A>(v_out), mat<A>(k),
        mat<A>(v), mat<A>(g), seq, channels);
  });
  check_launch(__func__);
}

}  // namespace ratplus::cuda
