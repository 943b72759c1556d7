// The RMSNorm entry points: checks, then the CPU or GPU kernels.
#include "kernels/norm.h"

#include "kernels/backend.h"

namespace ratplus {

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps) {
  const OpCheck check("rmsnorm_forward");
  check.device(x.device, {&out, &rstd, &w});
  check.activations(x, "x");
  check.dtype(out, "out", x.dtype);
  check.dtype(w, "w", x.dtype);
  check.statistics(rstd, "rstd", x);
  check.shape(out, "out", x.rows, x.cols);
  check.shape(w, "w", 1, x.cols);
  check.shape(rstd, "rstd", 1, x.rows);
  check.apart_or_same(out, "out", x, "x");
  check.apart(rstd, "rstd", out, "out");
  RATPLUS_DISPATCH(x, rmsnorm_forward(out, rstd, x, w, eps));
}

void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx) {
  const OpCheck check("rmsnorm_backward");
  check.device(x.device, {&dx, &dw, &dout, &w, &rstd});
  check.activations(x, "x");
  check.dtype(dx, "dx", x.dtype);
  check.dtype(dout, "dout", x.dtype);
  check.dtype(w, "w", x.dtype);
  check.statistics(dw, "dw", x);
  check.statistics(rstd, "rstd", x);
  check.shape(dx, "dx", x.rows, x.cols);
  check.shape(dout, "dout", x.rows, x.cols);
  check.shape(w, "w", 1, x.cols);
  check.shape(dw, "dw", 1, x.cols);
  check.shape(rstd, "rstd", 1, x.rows);
  check.apart_or_same(dx, "dx", dout, "dout");
  check.apart(dx, "dx", x, "x");
  check.apart(dw, "dw", dx, "dx");
  RATPLUS_DISPATCH(x, rmsnorm_backward(dx, dw, dout, x, w, rstd, accumulate_dx));
}

}  // namespace ratplus
