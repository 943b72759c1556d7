// CPU matrix products through OpenBLAS (sgemm / dgemm, row-major, strided views).
#include "kernels/matmul.h"

#include <cblas.h>

#include "kernels/backend.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace ratplus {

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  RATPLUS_ROUTE_CUDA(c, cuda::matmul(c, a, trans_a, b, trans_b, alpha, beta));
  const int64_t m = trans_a ? a.cols : a.rows;
  const int64_t k = trans_a ? a.rows : a.cols;
  const int64_t kb = trans_b ? b.cols : b.rows;
  const int64_t n = trans_b ? b.rows : b.cols;
  check_internal(k == kb && c.rows == m && c.cols == n, "matmul: shape mismatch");
  check_internal(a.dtype == c.dtype && b.dtype == c.dtype, "matmul: dtype mismatch");
  if (m == 0 || n == 0) return;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  if (c.dtype == DType::f32) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, static_cast<float>(alpha), a.ptr<float>(), a.ld, b.ptr<float>(), b.ld,
                static_cast<float>(beta), c.ptr<float>(), c.ld);
  } else if (c.dtype == DType::f64) {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a.ptr<double>(), a.ld, b.ptr<double>(), b.ld, beta,
                c.ptr<double>(), c.ld);
  } else {
    throw std::logic_error("matmul: the CPU backend computes in f32 or f64");
  }
}

}  // namespace ratplus
