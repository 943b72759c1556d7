// The two collectives the blocks need under tensor parallelism (see blocks.h).
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "model/blocks.h"

namespace ratplus {

void tensor_parallel_sum(const Dims& dims, Tensor t) {
  if (dims.tp && dims.tp->size() > 1) dims.tp->allreduce_sum(t);
}

void row_parallel_output(const Dims& dims, Tensor y, const Tensor& x, const Tensor& a, const Tensor& w) {
  if (!dims.tp || dims.tp->rank() == 0)
    linear_add(y, x, a, w);
  else
    matmul(y, a, false, w, true);
  tensor_parallel_sum(dims, y);
}

}  // namespace ratplus
