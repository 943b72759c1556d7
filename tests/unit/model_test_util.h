// Helpers for tests that run a whole model: its loss on one batch, and a training forward + backward into a
// gradient vector the test owns (the trainer's optimizer owns it in a real run).
#pragma once

#include <cstdint>
#include <ostream>

#include "core/buffer.h"
#include "model/model.h"

namespace ratplus::test {

// A model variant under an attention pattern, for parameterised tests (printed by name).
struct ModelCase {
  const char* name;
  bool recurrence, tied;
  const char* pattern;
};
inline void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

// A two-layer, two-head model of width 16 (FFN 24) over a small vocabulary.
inline ModelConfig tiny_model_config(int64_t vocab, bool recurrence, bool tied) {
  ModelConfig config;
  config.vocab_size = vocab;
  config.d_model = 16;
  config.n_layers = 2;
  config.n_heads = 2;
  config.d_ffn = 24;
  config.recurrence = recurrence;
  config.tie_embeddings = tied;
  config.init_std = 0.3;
  return config;
}

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
