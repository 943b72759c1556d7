// Gated linear recurrence on the GPU (f32): one thread per (sequence, channel) scans time sequentially,
// keys and values together, reading the gate once; consecutive threads take consecutive channels, so
// every time step is a coalesced row access. Bytes per element: forward reads k, v, g and writes k̃, ṽ
// (20 bytes); backward reads 7 and writes 3 values (40 bytes). A few FLOPs each: memory-bound. With only
// batch × channels threads this does not fill the GPU for small batches; a chunked scan over time is the
// next step (see the kernel notes in docs).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 128;

struct View {
  const float* p;
  int64_t ld;
  __device__ float operator()(int64_t r, int64_t c) const { return p[r * ld + c]; }
};

View view(const Tensor& t) { return {t.ptr<float>(), t.ld}; }

__device__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

__global__ void recurrence_forward_kernel(float* ko, int64_t ld_ko, float* vo, int64_t ld_vo, View k, View v, View g,
                                          int64_t batch, int64_t seq, int64_t channels) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch * channels) return;
  const int64_t b = i / channels, c = i % channels;
  float hk = 0, hv = 0;
  for (int64_t t = 0; t < seq; ++t) {
    const int64_t r = b * seq + t;
    const float a = sigmoid(g(r, c));
    hk = a * hk + (1.0f - a) * k(r, c);
    hv = a * hv + (1.0f - a) * v(r, c);
    ko[r * ld_ko + c] = hk;
    vo[r * ld_vo + c] = hv;
  }
}

__global__ void recurrence_backward_kernel(float* dk, int64_t ld_dk, float* dv, int64_t ld_dv, float* dg,
                                           int64_t ld_dg, View dko, View dvo, View ko, View vo, View k, View v,
                                           View g, int64_t batch, int64_t seq, int64_t channels) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch * channels) return;
  const int64_t b = i / channels, c = i % channels;
  float carry_k = 0, carry_v = 0;  // a_{t+1} λ_{t+1}
  for (int64_t t = seq - 1; t >= 0; --t) {
    const int64_t r = b * seq + t;
    const float a = sigmoid(g(r, c));
    const float lk = dko(r, c) + carry_k, lv = dvo(r, c) + carry_v;
    const float prev_k = t > 0 ? ko(r - 1, c) : 0.0f, prev_v = t > 0 ? vo(r - 1, c) : 0.0f;
    const float da = lk * (prev_k - k(r, c)) + lv * (prev_v - v(r, c));
    dk[r * ld_dk + c] = (1.0f - a) * lk;
    dv[r * ld_dv + c] = (1.0f - a) * lv;
    dg[r * ld_dg + c] = da * a * (1.0f - a);
    carry_k = a * lk;
    carry_v = a * lv;
  }
}

}  // namespace

void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g, int64_t batch) {
  require_f32(k, __func__);
  const int64_t seq = k.rows / batch, channels = k.cols;
  if (batch * channels == 0) return;
  recurrence_forward_kernel<<<blocks_for(batch * channels, kThreads), kThreads>>>(
      k_out.ptr<float>(), k_out.ld, v_out.ptr<float>(), v_out.ld, view(k), view(v), view(g), batch, seq, channels);
  check_launch(__func__);
}

void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                         int64_t batch) {
  require_f32(k, __func__);
  const int64_t seq = k.rows / batch, channels = k.cols;
  if (batch * channels == 0) return;
  recurrence_backward_kernel<<<blocks_for(batch * channels, kThreads), kThreads>>>(
      dk.ptr<float>(), dk.ld, dv.ptr<float>(), dv.ld, dg.ptr<float>(), dg.ld, view(dk_out), view(dv_out),
      view(k_out), view(v_out), view(k), view(v), view(g), batch, seq, channels);
  check_launch(__func__);
}

}  // namespace ratplus::cuda
