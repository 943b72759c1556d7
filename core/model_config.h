// The model section of an experiment config (SPEC §2, §10): the shape of a RAT+ or attention-only model.
// Each member is read, written and compared through its row in core/config_schema.cpp.
#pragma once

#include <cstdint>

namespace ratplus {

struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t d_ffn = 256;
  double norm_eps = 1e-6;
  double rope_base = 10000.0;
  bool tie_embeddings = true;
  bool recurrence = true;
  double init_std = 0.02;

  bool operator==(const ModelConfig&) const = default;

  int64_t head_dim() const { return d_model / n_heads; }
  // Rows of the fused input projection: o, q, k, v and (with recurrence) the forget gate g.
  int64_t in_proj_rows() const { return (recurrence ? 5 : 4) * d_model; }
  // Total parameter count, SPEC §2.
  int64_t parameter_count() const {
    const int64_t per_layer = in_proj_rows() * d_model + d_model * d_model + 2 * d_model * d_ffn + 2 * d_model;
    return n_layers * per_layer + vocab_size * d_model * (tie_embeddings ? 1 : 2) + d_model;
  }
};

}  // namespace ratplus
