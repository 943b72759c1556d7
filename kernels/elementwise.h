// Element-wise ops of the model: the sigmoid output gate, exact GELU, residual add, type conversion.
#pragma once

#include "core/tensor.h"

namespace ratplus {

// y = x ⊙ sigmoid(gate)
void sigmoid_gate_forward(Tensor y, const Tensor& x, const Tensor& gate);
// dx = dy ⊙ sigmoid(gate); dgate = dy ⊙ x ⊙ s(1 − s)
void sigmoid_gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate);

// y = x · Φ(x) = 0.5 x (1 + erf(x / √2))
void gelu_forward(Tensor y, const Tensor& x);
// dx = dy · (Φ(x) + x φ(x))
void gelu_backward(Tensor dx, const Tensor& dy, const Tensor& x);

// y += x
void add_inplace(Tensor y, const Tensor& x);

// dst = src converted to dst's element type (same shape and device; f32 ↔ f64 on the CPU, f32 ↔ bf16 on
// the GPU).
void convert_tensor(Tensor dst, const Tensor& src);

}  // namespace ratplus
