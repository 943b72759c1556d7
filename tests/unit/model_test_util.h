// Helpers for tests that run a whole model: its loss on one batch, and a training forward + backward into a
// gradient vector the test owns (the trainer's optimizer owns it in a real run).
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "model/model.h"

namespace ratplus::test {

// A flat gradient vector laid out like the model's weights, zero-filled.
struct Gradients {
  Arena arena;
  Tensor t;
  explicit Gradients(const Model& model) {
    arena.reserve("gradients", 1, model.table().total_elements(), model.gradient_dtype());
    arena.allocate(model.device());
    t = arena.get(0);
  }
  operator Tensor() const { return t; }
};

inline LossSum batch_loss(Model& model, const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq,
                          const Pattern& pattern) {
  return model.forward({inputs, batch, seq, pattern}, LossOutput{targets});
}

// Adds weight · ∂(mean loss)/∂θ to grads; returns the loss.
inline LossSum forward_backward(Model& model, const int32_t* inputs, const int32_t* targets, int64_t batch,
                                int64_t seq, const Pattern& pattern, const Tensor& grads, double weight = 1.0) {
  const LossSum loss = model.forward({inputs, batch, seq, pattern}, LossOutput{targets, grads, weight});
  model.backward(grads);
  return loss;
}

}  // namespace ratplus::test
