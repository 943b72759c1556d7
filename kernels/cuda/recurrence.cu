// Gated linear recurrence on the GPU (f32 or bf16 activations, f32 state and math): one thread per
// (sequence, channel) scans time sequentially, keys and values together, reading the gate once;
// consecutive threads take consecutive channels, so every time step is a coalesced row access. Per element
// the forward reads k, v, g and writes k̃, ṽ; the backward reads 7 and writes 3 values. A few FLOPs each:
// memory-bound. With only batch × channels threads this does not fill the GPU for small batches; a
// chunked scan over time is the next step.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 128;

__device__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

template <class A>
__global__ void recurrence_forward_kernel(Mat<A> ko, Mat<A> vo, Mat<A> k, Mat<A> v, Mat<A> g, int64_t batch,
                                          int64_t seq, int64_t channels) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch * channels) return;
  const int64_t b = i / channels, c = i % channels;
  float hk = 0, hv = 0;
  for (int64_t t = 0; t < seq; ++t) {
    const int64_t r = b * seq + t;
    const float a = sigmoid(g(r, c));
    hk = a * hk + (1.0f - a) * k(r, c);
    hv = a * hv + (1.0f - a) * v(r, c);
    ko.set(r, c, hk);
    vo.set(r, c, hv);
  }
}

// The adjoint uses the stored k̃_{t−1}, ṽ_{t−1} (as rounded to the activation type).
template <class A>
__global__ void recurrence_backward_kernel(Mat<A> dk, Mat<A> dv, Mat<A> dg, Mat<A> dko, Mat<A> dvo, Mat<A> ko,
                                           Mat<A> vo, Mat<A> k, Mat<A> v, Mat<A> g, int64_t batch, int64_t seq,
                                           int64_t channels) {
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
    dk.set(r, c, (1.0f - a) * lk);
    dv.set(r, c, (1.0f - a) * lv);
    dg.set(r, c, da * a * (1.0f - a));
    carry_k = a * lk;
    carry_v = a * lv;
  }
}

}  // namespace

void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g, int64_t batch) {
  const int64_t seq = k.rows / batch, channels = k.cols;
  if (batch * channels == 0) return;
  with_activation_type(k.dtype, __func__, [&]<class A>() {
    recurrence_forward_kernel<A><<<blocks_for(batch * channels, kThreads), kThreads>>>(
        mat<A>(k_out), mat<A>(v_out), mat<A>(k), mat<A>(v), mat<A>(g), batch, seq, channels);
  });
  check_launch(__func__);
}

void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                         int64_t batch) {
  const int64_t seq = k.rows / batch, channels = k.cols;
  if (batch * channels == 0) return;
  with_activation_type(k.dtype, __func__, [&]<class A>() {
    recurrence_backward_kernel<A><<<blocks_for(batch * channels, kThreads), kThreads>>>(
        mat<A>(dk), mat<A>(dv), mat<A>(dg), mat<A>(dk_out), mat<A>(dv_out), mat<A>(k_out), mat<A>(v_out), mat<A>(k),
        mat<A>(v), mat<A>(g), batch, seq, channels);
  });
  check_launch(__func__);
}

}  // namespace ratplus::cuda
