// The GPU execution context (gpu_context.h) and the matrix products it runs through cuBLASLt: f32 × f32 →
// f32 with f32 compute and no TF32 (so results track the CPU reference), or bf16 × bf16 → bf16 or f32 on
// the tensor cores with f32 accumulation (mixed precision; weight gradients come out in f32). Row-major
// C = op(A)·op(B) is computed as the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ, which needs no copies: a
// row-major matrix with row stride ld is the column-major transpose with the same ld. Products of one bf16
// row against bf16 weights (decoding steps at batch 1) run on the kernel of matvec.cu instead.
#include "kernels/cuda/gpu_context.h"

#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/matvec.h"

namespace ratplus::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

void check_blas(cublasStatus_t status, const std::string& what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(what + ": cuBLASLt status " + std::to_string(static_cast<int>(status)));
}

cudaDataType_t data_type(DType t) { return t == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F; }

// The column-major layout of a row-major tensor (rows × cols with row stride ld).
cublasLtMatrixLayout_t layout(const Tensor& t) {
  cublasLtMatrixLayout_t l = nullptr;
  check_blas(cublasLtMatrixLayoutCreate(&l, data_type(t.dtype), t.cols, t.rows, t.ld), "cublasLtMatrixLayoutCreate");
  return l;
}

}  // namespace

size_t GpuContext::scratch_bytes() { return kWorkspaceBytes + reduction_slots() * sizeof(double); }

GpuContext::GpuContext() : scratch_(scratch_bytes(), Device::cuda) {
  check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
  check_blas(cublasLtCreate(&blas_), "cublasLtCreate");
}

GpuContext::~GpuContext() {
  for (auto& [shape, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  cublasLtDestroy(blas_);
  cudaStreamDestroy(stream_);
}

double* GpuContext::reduction_partials() const {
  return reinterpret_cast<double*>(static_cast<char*>(scratch_.data()) + kWorkspaceBytes);
}

const GpuContext::MatmulPlan& GpuContext::plan(const MatmulShape& shape, const Tensor& c, const Tensor& a,
                                               bool trans_a, const Tensor& b, bool trans_b) {
  if (const auto found = plans_.find(shape); found != plans_.end()) return found->second;
  MatmulPlan p;
  check_blas(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // Cᵀ = op(B)ᵀ op(A)ᵀ
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first);
  cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second);
  p.b = layout(b);
  p.a = layout(a);
  p.c = layout(c);
  cublasLtMatmulPreference_t pref = nullptr;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspaceBytes,
                                       sizeof kWorkspaceBytes);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(blas_, p.desc, p.b, p.a, p.c, p.c, pref, 1, &heuristic, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  const std::string what = "matmul " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + "x" +
                           std::to_string(trans_a ? a.rows : a.cols);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
    check_blas(found > 0 ? status : CUBLAS_STATUS_NOT_SUPPORTED, what + " (no algorithm)");
  }
  p.algo = heuristic.algo;
  return plans_.emplace(shape, p).first->second;
}

void GpuContext::matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha,
                        double beta) {
  const int64_t k = trans_a ? a.rows : a.cols;
  const MatmulPlan& p =
      plan({a.dtype, c.dtype, trans_a, trans_b, c.rows, c.cols, k, a.ld, b.ld, c.ld}, c, a, trans_a, b, trans_b);
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  check_blas(cublasLtMatmul(blas_, p.desc, &fa, b.data, p.b, a.data, p.a, &fb, c.data, p.c, c.data, p.c, &p.algo,
                            scratch_.data(), kWorkspaceBytes, stream_),
             "matmul " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + "x" + std::to_string(k));
}

GpuContext& gpu_context() {
  thread_local GpuContext context;
  return context;
}

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  if (matvec(c, a, trans_a, b, trans_b, alpha, beta)) return;
  gpu_context().matmul(c, a, trans_a, b, trans_b, alpha, beta);
}

}  // namespace ratplus::cuda
