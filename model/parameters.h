// The parameter table of a model (SPEC §7): every tensor's name, shape [out, in] and offset inside one
// contiguous buffer. Parameters, gradients and optimizer moments all share this layout, so whole-model
// operations (AdamW, gradient norms, checkpoint I/O) walk one flat array.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"

namespace ratplus {

struct ParameterInfo {
  std::string name;     // e.g. "layers/3/attn/in_proj/weight"
  int64_t rows = 0;     // out features ([d] vectors have rows = 1)
  int64_t cols = 0;     // in features
  int64_t offset = 0;   // element offset in the flat buffer
  bool is_vector = false;  // stored as a 1-D dataset of length cols
  int64_t numel() const { return rows * cols; }
};

// Where each layer's tensors sit in the table.
struct LayerParameterIndex {
  int attn_norm, in_proj, out_proj, ffn_norm, fc1, fc2;
};

class ParameterTable {
 public:
  explicit ParameterTable(const ModelConfig& config);

  const std::vector<ParameterInfo>& entries() const { return entries_; }
  int64_t total_elements() const { return total_; }
  // Index of a parameter by name, or -1.
  int find(const std::string& name) const;

  int embed() const { return embed_; }
  int final_norm() const { return final_norm_; }
  // The output head: the embedding itself when embeddings are tied.
  int lm_head() const { return lm_head_; }
  const LayerParameterIndex& layer(int64_t i) const { return layers_[i]; }

 private:
  int add(std::string name, int64_t rows, int64_t cols, bool is_vector);

  std::vector<ParameterInfo> entries_;
  std::vector<LayerParameterIndex> layers_;
  int embed_ = -1, final_norm_ = -1, lm_head_ = -1;
  int64_t total_ = 0;
};

}  // namespace ratplus
