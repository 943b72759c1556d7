// Builds the SPEC §7 parameter table from a model config.
#include "model/parameters.h"

namespace ratplus {

ParameterTable::ParameterTable(const ModelConfig& c) {
  const int64_t d = c.d_model;
  embed_ = add("embed/weight", c.vocab_size, d, false);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers/" + std::to_string(i) + "/";
    LayerParameterIndex l{};
    l.attn_norm = add(p + "attn_norm/weight", 1, d, true);
    l.in_proj = add(p + "attn/in_proj/weight", c.in_proj_rows(), d, false);
    l.out_proj = add(p + "attn/out_proj/weight", d, d, false);
    l.ffn_norm = add(p + "ffn_norm/weight", 1, d, true);
    l.fc1 = add(p + "ffn/fc1/weight", c.d_ffn, d, false);
    l.fc2 = add(p + "ffn/fc2/weight", d, c.d_ffn, false);
    layers_.push_back(l);
  }
  final_norm_ = add("final_norm/weight", 1, d, true);
  lm_head_ = c.tie_embeddings ? embed_ : add("lm_head/weight", c.vocab_size, d, false);
}

int ParameterTable::add(std::string name, int64_t rows, int64_t cols, bool is_vector) {
  entries_.push_back({std::move(name), rows, cols, total_, is_vector});
  total_ += rows * cols;
  return static_cast<int>(entries_.size()) - 1;
}

int ParameterTable::find(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace ratplus
