// The GPU execution context: what every piece of GPU work of one thread shares.
//   - one stream (a blocking stream, not the legacy default stream, so a CUDA graph can capture it; work
//     that other code still puts on the legacy default stream stays ordered with it);
//   - a cuBLASLt handle and, per matmul shape, its descriptors, layouts and algorithm, found by the
//     heuristic on the first product of that shape and reused after;
//   - scratch memory taken once when the context is made (the cuBLASLt workspace and the partial sums of
//     the reductions): scratch_bytes(), which the model's memory plan counts. No GPU op allocates.
//
// How ops find it: one context per thread, made on the thread's first GPU work and kept until the thread
// ends. The model makes its thread's context when it is constructed, so the context's allocation happens
// at setup. cuda_stream() is the stream; kernels launch on it, cuBLASLt and the copies of core/buffer.h
// run on it, and a caller may capture it (cudaStreamBeginCapture) or synchronise with it.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <tuple>

#include "core/buffer.h"
#include "core/tensor.h"

namespace ratplus::cuda {

class GpuContext {
 public:
  // Device bytes a context holds: the cuBLASLt workspace and the reductions' partial sums.
  static size_t scratch_bytes();

  GpuContext();
  ~GpuContext();
  GpuContext(const GpuContext&) = delete;
  GpuContext& operator=(const GpuContext&) = delete;

  cudaStream_t stream() const { return stream_; }

  // c = alpha · op(a) · op(b) + beta · c on the stream (the shape's plan made on its first use).
  void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta);

  // Scratch for the per-block partial sums of a reduction (reduction_slots() doubles).
  double* reduction_partials() const;
  static constexpr int reduction_slots() { return 1024; }

 private:
  struct MatmulPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // dtypes of A and C, trans_a, trans_b, m, n, k, lda, ldb, ldc
  using MatmulShape = std::tuple<DType, DType, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  const MatmulPlan& plan(const MatmulShape& shape, const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b);

  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t blas_ = nullptr;
  Buffer scratch_;
  std::map<MatmulShape, MatmulPlan> plans_;
};

// This thread's context, made on first use.
GpuContext& gpu_context();

}  // namespace ratplus::cuda

namespace ratplus {

// The stream of this thread's GPU context (see above).
inline cudaStream_t cuda_stream() { return cuda::gpu_context().stream(); }

}  // namespace ratplus
