// Matrix products on the GPU through cuBLASLt: f32 × f32 → f32 with f32 compute and no TF32 (so results
// track the CPU reference), or bf16 × bf16 → bf16 or f32 on the tensor cores with f32 accumulation (mixed
// precision; weight gradients come out in f32). Row-major C = op(A)·op(B) is computed as the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ, which
// needs no copies: a row-major matrix with row stride ld is the column-major transpose with the same ld.
// One handle and a 32 MiB workspace serve the process; the algorithm comes from cuBLASLt's heuristic.
#include <cublasLt.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + ": cuBLASLt status " + std::to_string(static_cast<int>(status)));
}

struct Blas {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = size_t{32} << 20;
  Blas() {
    check_blas(cublasLtCreate(&handle), "cublasLtCreate");
    check(cudaMalloc(&workspace, workspace_bytes), "cudaMalloc (cuBLASLt workspace)");
  }
};

Blas& blas() {
  static Blas instance;
  return instance;
}

cudaDataType_t data_type(const Tensor& t) {
  if (t.dtype == DType::f32) return CUDA_R_32F;
  if (t.dtype == DType::bf16) return CUDA_R_16BF;
  throw std::logic_error("matmul (CUDA): f32 or bf16 tensors expected");
}

// The column-major layout of a row-major tensor (rows × cols with row stride ld).
struct Layout {
  cublasLtMatrixLayout_t layout = nullptr;
  explicit Layout(const Tensor& t) {
    check_blas(cublasLtMatrixLayoutCreate(&layout, data_type(t), t.cols, t.rows, t.ld), "cublasLtMatrixLayoutCreate");
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(layout); }
};

}  // namespace

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  const int64_t m = c.rows, n = c.cols, k = trans_a ? a.rows : a.cols;
  Blas& lt = blas();
  cublasLtMatmulDesc_t desc = nullptr;
  check_blas(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // Cᵀ = op(B)ᵀ op(A)ᵀ
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second);
  const Layout lb(b), la(a), lc(c);
  cublasLtMatmulPreference_t pref = nullptr;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.workspace_bytes,
                                       sizeof lt.workspace_bytes);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(lt.handle, desc, lb.layout, la.layout, lc.layout, lc.layout, pref, 1, &heuristic,
                                     &found);
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  cublasStatus_t run = status;
  if (status == CUBLAS_STATUS_SUCCESS && found > 0)
    run = cublasLtMatmul(lt.handle, desc, &fa, b.data, lb.layout, a.data, la.layout, &fb, c.data, lc.layout, c.data,
                         lc.layout, &heuristic.algo, lt.workspace, lt.workspace_bytes, nullptr);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatmulDescDestroy(desc);
  const std::string what = "matmul " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
  check_blas(found > 0 ? run : CUBLAS_STATUS_NOT_SUPPORTED, what.c_str());
}

}  // namespace ratplus::cuda
