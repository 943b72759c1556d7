// The two collectives the blocks need under tensor parallelism (see blocks.h).
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "model/blocks.h"

namespace ratplus {

void tensor_parallel_sum(const Dims& dims, Tensor t) {
  if (dims.tp && dims.tp->size() > 1) dims.tp->allreduce_sum(t);
}

void row_parallel_output(const Dims& dims, Tensor y, const Tensor& x, const Tensor& a, const Tensor& w) {
  const bool adds_residual = !dims.tp || dims.tp->rank() == 0;
  if (adds_residual) copy_tensor(y, x);
  matmul(y, a, false, w, true, 1.0, adds_residual ? 1.0 : 0.0);
  tensor_parallel_sum(dims, y);
}

}  // namespace ratplus
