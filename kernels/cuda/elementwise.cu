// Element-wise ops on the GPU (f32): sigmoid gate, exact GELU, residual add, embedding gather/scatter.
// One thread per element over strided [rows, cols] views. Each reads 1–3 and writes 1–2 values per
// element for a few FLOPs: memory-bound, the target is HBM bandwidth. The embedding backward adds rows
// with atomics (rows may share a token), so its result is summed in an unspecified order.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

struct View {
  float* p;
  int64_t ld;
  __device__ float& operator()(int64_t r, int64_t c) const { return p[r * ld + c]; }
};

View view(const Tensor& t) { return {t.ptr<float>(), t.ld}; }

__device__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

// Calls f(r, c) for every element of a rows × cols grid, one thread each.
template <class F>
__global__ void each_element(int64_t rows, int64_t cols, F f) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < rows * cols) f(i / cols, i % cols);
}

template <class F>
void launch(const Tensor& shape, const char* name, F f) {
  if (shape.numel() == 0) return;
  each_element<<<blocks_for(shape.numel(), kThreads), kThreads>>>(shape.rows, shape.cols, f);
  check_launch(name);
}

}  // namespace

void sigmoid_gate_forward(Tensor y, const Tensor& x, const Tensor& gate) {
  require_f32(y, __func__);
  launch(y, __func__, [Y = view(y), X = view(x), G = view(gate)] __device__(int64_t r, int64_t c) {
    Y(r, c) = X(r, c) * sigmoid(G(r, c));
  });
}

void sigmoid_gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate) {
  require_f32(dy, __func__);
  launch(dy, __func__,
         [DX = view(dx), DG = view(dgate), DY = view(dy), X = view(x), G = view(gate)] __device__(int64_t r, int64_t c) {
           const float s = sigmoid(G(r, c)), g = DY(r, c);
           DG(r, c) = g * X(r, c) * s * (1.0f - s);
           DX(r, c) = g * s;
         });
}

void gelu_forward(Tensor y, const Tensor& x) {
  require_f32(y, __func__);
  launch(y, __func__, [Y = view(y), X = view(x)] __device__(int64_t r, int64_t c) {
    const float v = X(r, c);
    Y(r, c) = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  });
}

void gelu_backward(Tensor dx, const Tensor& dy, const Tensor& x) {
  require_f32(dy, __func__);
  launch(dy, __func__, [DX = view(dx), DY = view(dy), X = view(x)] __device__(int64_t r, int64_t c) {
    const float v = X(r, c);
    const float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
    const float pdf = 0.3989422804014327f * __expf(-0.5f * v * v);
    DX(r, c) = DY(r, c) * (cdf + v * pdf);
  });
}

void add_inplace(Tensor y, const Tensor& x) {
  require_f32(y, __func__);
  launch(y, __func__, [Y = view(y), X = view(x)] __device__(int64_t r, int64_t c) { Y(r, c) += X(r, c); });
}

void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table) {
  require_f32(out, __func__);
  launch(out, __func__, [O = view(out), T = view(table), tokens] __device__(int64_t r, int64_t c) {
    O(r, c) = T(tokens[r], c);
  });
}

void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout) {
  require_f32(dout, __func__);
  launch(dout, __func__, [DT = view(dtable), D = view(dout), tokens] __device__(int64_t r, int64_t c) {
    atomicAdd(&DT(tokens[r], c), D(r, c));
  });
}

}  // namespace ratplus::cuda
