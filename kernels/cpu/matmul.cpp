// CPU matrix products through OpenBLAS (sgemm / dgemm, row-major, strided views).
#include <cblas.h>

#include "kernels/cpu/cpu_ops.h"

namespace ratplus::cpu {

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  const int64_t m = c.rows, n = c.cols, k = trans_a ? a.rows : a.cols;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  if (c.dtype == DType::f32) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, static_cast<float>(alpha), a.ptr<float>(), a.ld, b.ptr<float>(), b.ld,
                static_cast<float>(beta), c.ptr<float>(), c.ld);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a.ptr<double>(), a.ld, b.ptr<double>(), b.ld, beta,
                c.ptr<double>(), c.ld);
  }
}

}  // namespace ratplus::cpu
