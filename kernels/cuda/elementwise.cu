// Element-wise ops on the GPU (f32 or bf16 activations, f32 math): sigmoid gate, exact GELU, residual
// add, embedding gather/scatter, dtype conversion, over strided [rows, cols] views. The maps of one or two
// views into a third (the gate's and GELU's forwards, GELU's backward, the residual add) take one thread per
// 16-byte chunk (8 bf16 or 4 f32 of a row) when every view's rows are 16-byte aligned and hold whole chunks,
// so a warp moves 512 bytes per load; the others, and any view that is not so aligned, one thread per
// element. Each reads 1–3 and writes 1–2 values per element for a few FLOPs: memory-bound, the target is HBM
// bandwidth (with one thread per bf16 element the GELU of a 1.5B decoding step at batch 2048 ran at
// 0.8 TB/s, in chunks at 1.8 TB/s, where erf's instructions begin to count). The embedding backward adds
// rows into the f32 table gradient with atomics (rows may share a token), so its result is summed in an
// unspecified order.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;

// Calls f(r, c) for every element of a rows × cols grid, one thread each: a block covers kThreads columns
// of one row (block = row · column_blocks + column block), so no thread divides 64-bit indices.
template <class F>
__global__ void each_element(int64_t cols, unsigned column_blocks, F f) {
  const int64_t r = blockIdx.x / column_blocks, c = (blockIdx.x % column_blocks) * int64_t{kThreads} + threadIdx.x;
  if (c < cols) f(r, c);
}

template <class F>
void launch(const Tensor& shape, const char* name, F f) {
  if (shape.numel() == 0) return;
  const unsigned column_blocks = blocks_for(shape.cols, kThreads);
  if (shape.rows * column_blocks >= (int64_t{1} << 31)) throw std::logic_error(std::string(name) + ": too many rows");
  each_element<<<static_cast<unsigned>(shape.rows) * column_blocks, kThreads, 0, cuda_stream()>>>(shape.cols,
                                                                                                   column_blocks, f);
  check_launch(name);
}

// Elements of A in a 16-byte chunk.
template <class A>
constexpr int kChunk = 16 / static_cast<int>(sizeof(A));

template <class A>
__device__ void load_chunk(const A* p, float (&x)[kChunk<A>]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int i = 0; i < kChunk<A>; ++i) x[i] = to_float(reinterpret_cast<const A*>(&raw)[i]);
}

template <class A>
__device__ void store_chunk(A* p, const float (&x)[kChunk<A>]) {
  uint4 raw;
#pragma unroll
  for (int i = 0; i < kChunk<A>; ++i) reinterpret_cast<A*>(&raw)[i] = from_float<A>(x[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// Whether t's rows can be read in 16-byte chunks of A.
template <class A>
bool chunked(const Tensor& t) {
  return t.empty() ||
         (reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && (t.ld * sizeof(A)) % 16 == 0 && t.cols % kChunk<A> == 0);
}

// y = op(a, b) element by element (b: a second view of y's shape, or empty, when op ignores its second
// argument), in 16-byte chunks where every view allows. y may be a or b.
template <class A, class Op>
void map(Tensor y, const char* name, Op op, const Tensor& a, const Tensor& b = {}) {
  const Mat<A> Y = mat<A>(y), X = mat<A>(a), Z = mat<A>(b);
  if (!(chunked<A>(y) && chunked<A>(a) && chunked<A>(b))) {
    launch(y, name, [=] __device__(int64_t r, int64_t c) { Y.set(r, c, op(X(r, c), Z.p ? Z(r, c) : 0.0f)); });
    return;
  }
  const Tensor chunks{y.data, y.rows, y.cols / kChunk<A>, y.ld, y.dtype, y.device};  // the grid: one per chunk
  launch(chunks, name, [=] __device__(int64_t r, int64_t chunk) {
    const int64_t c = chunk * kChunk<A>;
    float x[kChunk<A>], z[kChunk<A>] = {};
    load_chunk(X.row(r) + c, x);
    if (Z.p) load_chunk(Z.row(r) + c, z);
#pragma unroll
    for (int i = 0; i < kChunk<A>; ++i) x[i] = op(x[i], z[i]);
    store_chunk(Y.row(r) + c, x);
  });
}

// The typed bodies (device lambdas must live in named functions, not in generic lambdas).

template <class A>
void gate_forward(Tensor y, const Tensor& x, const Tensor& gate) {
  map<A>(y, "sigmoid_gate_forward", [] __device__(float v, float g) { return v * sigmoid(g); }, x, gate);
}

template <class A>
void gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate) {
  launch(dy, "sigmoid_gate_backward",
         [DX = mat<A>(dx), DG = mat<A>(dgate), DY = mat<A>(dy), X = mat<A>(x), G = mat<A>(gate)] __device__(
             int64_t r, int64_t c) {
           const float s = sigmoid(G(r, c)), g = DY(r, c);
           DG.set(r, c, g * X(r, c) * s * (1.0f - s));
           DX.set(r, c, g * s);
         });
}

template <class A>
void gelu(Tensor y, const Tensor& x) {
  map<A>(y, "gelu_forward", [] __device__(float v, float) { return gelu_of(v); }, x);
}

template <class A>
void gelu_grad(Tensor dx, const Tensor& dy, const Tensor& x) {
  map<A>(
      dx, "gelu_backward",
      [] __device__(float g, float v) {
        const float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        const float pdf = 0.3989422804014327f * __expf(-0.5f * v * v);
        return g * (cdf + v * pdf);
      },
      dy, x);
}

template <class A>
void add(Tensor y, const Tensor& x) {
  map<A>(y, "add_inplace", [] __device__(float a, float b) { return a + b; }, y, x);
}

template <class A>
void gather(Tensor out, const int32_t* tokens, const Tensor& table, int64_t vocab_begin) {
  launch(out, "embedding_forward",
         [O = mat<A>(out), T = mat<A>(table), tokens, vocab_begin, n = table.rows] __device__(int64_t r, int64_t c) {
           const int64_t row = tokens[r] - vocab_begin;
           O.set(r, c, row >= 0 && row < n ? T(row, c) : 0.0f);
         });
}

template <class A>
void scatter_add(Tensor dtable, const int32_t* tokens, const Tensor& dout, int64_t vocab_begin) {
  launch(dout, "embedding_backward",
         [DT = mat<float>(dtable), D = mat<A>(dout), tokens, vocab_begin, n = dtable.rows] __device__(int64_t r,
                                                                                                      int64_t c) {
           const int64_t row = tokens[r] - vocab_begin;
           if (row >= 0 && row < n) atomicAdd(DT.row(row) + c, D(r, c));
         });
}

template <class To, class From>
void convert_to(Tensor dst, const Tensor& src) {
  launch(dst, "convert",
         [D = mat<To>(dst), S = mat<From>(src)] __device__(int64_t r, int64_t c) { D.set(r, c, S(r, c)); });
}

}  // namespace

void sigmoid_gate_forward(Tensor y, const Tensor& x, const Tensor& gate) {
  with_activation_type(y.dtype, __func__, [&]<class A>() { gate_forward<A>(y, x, gate); });
}

void sigmoid_gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate) {
  with_activation_type(dy.dtype, __func__, [&]<class A>() { gate_backward<A>(dx, dgate, dy, x, gate); });
}

void gelu_forward(Tensor y, const Tensor& x) {
  with_activation_type(y.dtype, __func__, [&]<class A>() { gelu<A>(y, x); });
}

void gelu_backward(Tensor dx, const Tensor& dy, const Tensor& x) {
  with_activation_type(dy.dtype, __func__, [&]<class A>() { gelu_grad<A>(dx, dy, x); });
}

void add_inplace(Tensor y, const Tensor& x) {
  with_activation_type(y.dtype, __func__, [&]<class A>() { add<A>(y, x); });
}

void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table, int64_t vocab_begin) {
  with_activation_type(out.dtype, __func__, [&]<class A>() { gather<A>(out, tokens, table, vocab_begin); });
}

void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout, int64_t vocab_begin) {
  with_activation_type(dout.dtype, __func__, [&]<class A>() { scatter_add<A>(dtable, tokens, dout, vocab_begin); });
}

void convert(Tensor dst, const Tensor& src) {
  with_activation_type(dst.dtype, __func__, [&]<class To>() {
    with_activation_type(src.dtype, __func__, [&]<class From>() { convert_to<To, From>(dst, src); });
  });
}

}  // namespace ratplus::cuda
