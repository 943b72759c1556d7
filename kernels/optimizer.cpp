// The optimizer entry points: flat vectors of one length, f32 moments; then the CPU or GPU kernels.
#include "kernels/optimizer.h"

#include "kernels/backend.h"

namespace ratplus {

void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, const AdamWStep& step, Tensor params_copy) {
  const OpCheck check("adamw_update");
  check.device(params.device, {&grads, &m, &v});
  if (params.device == Device::cuda) check.dtype(params, "the parameters", DType::f32);
  check.activations(params, "the parameters");
  check.dtype(grads, "the gradients", params.dtype);
  check.dtype(m, "the first moments", DType::f32);
  check.dtype(v, "the second moments", DType::f32);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&params, &grads, &m, &v})
    check.that(t->contiguous() && t->numel() == params.numel(), "flat tensors of one length expected");
  if (!params_copy.empty()) {
    check.device(params.device, {&params_copy});
    if (params.device == Device::cuda) check.dtype(params_copy, "the parameter copy", DType::bf16);
    check.activations(params_copy, "the parameter copy");
    check.shape(params_copy, "the parameter copy", params.rows, params.cols);
    check.apart(params_copy, "the parameter copy", params, "the parameters");
  }
  RATPLUS_DISPATCH(params, adamw_update(params, grads, m, v, step, params_copy));
}

double sum_of_squares(const Tensor& x) {
  const OpCheck check("sum_of_squares");
  if (x.device == Device::cuda) check.dtype(x, "x", DType::f32);
  check.activations(x, "x");
  check.that(x.contiguous(), "a flat tensor expected");
  return RATPLUS_DISPATCH(x, sum_of_squares(x));
}

}  // namespace ratplus
