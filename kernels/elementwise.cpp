// The element-wise entry points: every operand has the output's shape, type and device; an output is the
// same view as an input (in place) or shares nothing with it.
#include "kernels/elementwise.h"

#include "kernels/backend.h"

namespace ratplus {

namespace {

struct Operand {
  const Tensor* t;
  const char* name;
};

// Checks `in` against `out` (which must hold activations) for an element-wise op.
void check_elementwise(const OpCheck& check, Operand out, std::initializer_list<Operand> in) {
  check.activations(*out.t, out.name);
  for (const Operand& o : in) {
    check.device(out.t->device, {o.t});
    check.dtype(*o.t, o.name, out.t->dtype);
    check.shape(*o.t, o.name, out.t->rows, out.t->cols);
    check.apart_or_same(*out.t, out.name, *o.t, o.name);
  }
}

}  // namespace

void sigmoid_gate_forward(Tensor y, const Tensor& x, const Tensor& gate) {
  check_elementwise(OpCheck("sigmoid_gate_forward"), {&y, "y"}, {{&x, "x"}, {&gate, "gate"}});
  RATPLUS_DISPATCH(y, sigmoid_gate_forward(y, x, gate));
}

void sigmoid_gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate) {
  const OpCheck check("sigmoid_gate_backward");
  check_elementwise(check, {&dx, "dx"}, {{&dgate, "dgate"}, {&dy, "dy"}, {&x, "x"}, {&gate, "gate"}});
  check_elementwise(check, {&dgate, "dgate"}, {{&dy, "dy"}, {&x, "x"}, {&gate, "gate"}});
  check.apart(dx, "dx", dgate, "dgate");
  RATPLUS_DISPATCH(dy, sigmoid_gate_backward(dx, dgate, dy, x, gate));
}

void gelu_forward(Tensor y, const Tensor& x) {
  check_elementwise(OpCheck("gelu_forward"), {&y, "y"}, {{&x, "x"}});
  RATPLUS_DISPATCH(y, gelu_forward(y, x));
}

void gelu_backward(Tensor dx, const Tensor& dy, const Tensor& x) {
  check_elementwise(OpCheck("gelu_backward"), {&dx, "dx"}, {{&dy, "dy"}, {&x, "x"}});
  RATPLUS_DISPATCH(dy, gelu_backward(dx, dy, x));
}

void add_inplace(Tensor y, const Tensor& x) {
  check_elementwise(OpCheck("add_inplace"), {&y, "y"}, {{&x, "x"}});
  RATPLUS_DISPATCH(y, add_inplace(y, x));
}

void convert_tensor(Tensor dst, const Tensor& src) {
  const OpCheck check("convert_tensor");
  check.device(dst.device, {&src});
  check.activations(dst, "dst");
  check.activations(src, "src");
  check.shape(dst, "dst", src.rows, src.cols);
  check.apart(dst, "dst", src, "src");
  RATPLUS_DISPATCH(dst, convert(dst, src));
}

}  // namespace ratplus
