// The matmul entry point: checks, then the CPU (OpenBLAS) or GPU (cuBLASLt) product; the linear layers
// with their neighbours: on the GPU at one row the fused matrix–vector kernels (kernels/cuda/matvec.h),
// otherwise composed of matmul and the element-wise ops.
#include "kernels/matmul.h"

#include "core/buffer.h"
#include "kernels/backend.h"
#include "kernels/elementwise.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/matvec.h"
#endif

namespace ratplus {

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta) {
  const OpCheck check("matmul");
  check.device(c.device, {&a, &b});
  check.activations(a, "A");
  check.dtype(b, "B", a.dtype);
  if (c.device == Device::cuda && c.dtype == DType::f32) {
    check.that(a.dtype != DType::f64, "C is f32 but A is f64");
  } else {
    check.dtype(c, "C", a.dtype);
  }
  const int64_t m = trans_a ? a.cols : a.rows, k = trans_a ? a.rows : a.cols;
  const int64_t kb = trans_b ? b.cols : b.rows, n = trans_b ? b.rows : b.cols;
  check.that(k == kb, fmt::format("the inner dimensions of op(A) ({}) and op(B) ({}) differ", k, kb));
  check.shape(c, "C", m, n);
  check.apart(c, "C", a, "A");
  check.apart(c, "C", b, "B");
  if (m == 0 || n == 0) return;
  RATPLUS_DISPATCH(c, matmul(c, a, trans_a, b, trans_b, alpha, beta));
}

void linear_add(Tensor y, const Tensor& residual, const Tensor& a, const Tensor& w) {
  const OpCheck check("linear_add");
  check.device(y.device, {&residual});
  check.dtype(residual, "residual", y.dtype);
  check.shape(residual, "residual", y.rows, y.cols);
  check.apart_or_same(y, "y", residual, "residual");
  check.device(y.device, {&a, &w});
#ifdef RATPLUS_HAVE_CUDA
  if (y.device == Device::cuda && cuda::matvec_add(y, residual, a, w)) return;
#endif
  if (residual.data != y.data) copy_tensor(y, residual);
  matmul(y, a, false, w, true, 1.0, 1.0);
}

void linear_gelu(Tensor pre, Tensor act, const Tensor& a, const Tensor& w) {
#ifdef RATPLUS_HAVE_CUDA
  if (pre.device == Device::cuda) {
    const OpCheck check("linear_gelu");
    check.device(pre.device, {&act, &a, &w});
    check.shape(pre, "pre", a.rows, w.rows);
    check.shape(act, "act", a.rows, w.rows);
    check.dtype(act, "act", pre.dtype);
    check.that(a.cols == w.cols, fmt::format("a has {} columns, w {}", a.cols, w.cols));
    if (cuda::matvec_gelu(pre, act, a, w)) return;
  }
#endif
  matmul(pre, a, false, w, true);
  gelu_forward(act, pre);
}

}  // namespace ratplus
