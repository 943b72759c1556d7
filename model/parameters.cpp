// Builds the SPEC §7 parameter table from a model config, whole or as one tensor-parallel rank's slices.
#include "model/parameters.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"

namespace ratplus {

std::string tensor_parallel_error(const ModelConfig& c, int tp) {
  if (c.n_heads % tp != 0) return fmt::format("model.n_heads {} is not a multiple of parallel.tp {}", c.n_heads, tp);
  if (c.d_ffn % tp != 0) return fmt::format("model.d_ffn {} is not a multiple of parallel.tp {}", c.d_ffn, tp);
  if (c.vocab_size % tp != 0)
    return fmt::format("model.vocab_size {} is not a multiple of parallel.tp {}", c.vocab_size, tp);
  return "";
}

ParameterTable::ParameterTable(const ModelConfig& c, int tp_rank, int tp_size) : tp_rank_(tp_rank), tp_size_(tp_size) {
  check_internal(tp_size >= 1 && tp_rank >= 0 && tp_rank < tp_size && tensor_parallel_error(c, tp_size).empty(),
                 "ParameterTable: the model cannot be split that way");
  heads_ = c.n_heads / tp_size;
  ffn_ = c.d_ffn / tp_size;
  const int64_t d = c.d_model, tp = tp_size;
  const int64_t in_blocks = c.in_proj_rows() / d;
  embed_ = add("embed/weight", c.vocab_size, d, false, 1, tp, 1);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers/" + std::to_string(i) + "/";
    LayerParameterIndex l{};
    l.attn_norm = add(p + "attn_norm/weight", 1, d, true);
    l.in_proj = add(p + "attn/in_proj/weight", c.in_proj_rows(), d, false, in_blocks, tp, 1);
    l.out_proj = add(p + "attn/out_proj/weight", d, d, false, 1, 1, tp);
    l.ffn_norm = add(p + "ffn_norm/weight", 1, d, true);
    l.fc1 = add(p + "ffn/fc1/weight", c.d_ffn, d, false, 1, tp, 1);
    l.fc2 = add(p + "ffn/fc2/weight", d, c.d_ffn, false, 1, 1, tp);
    layers_.push_back(l);
  }
  final_norm_ = add("final_norm/weight", 1, d, true);
  lm_head_ = c.tie_embeddings ? embed_ : add("lm_head/weight", c.vocab_size, d, false, 1, tp, 1);
}

// A tensor of full shape [full_rows, full_cols] whose row blocks are each cut into row_split parts and whose
// columns are cut into col_split parts; this rank keeps part tp_rank_ of each cut.
int ParameterTable::add(std::string name, int64_t full_rows, int64_t full_cols, bool is_vector, int64_t row_blocks,
                        int64_t row_split, int64_t col_split) {
  ParameterInfo p;
  p.name = std::move(name);
  p.is_vector = is_vector;
  p.full_rows = full_rows;
  p.full_cols = full_cols;
  p.row_blocks = row_blocks;
  const int64_t block_rows = full_rows / row_blocks / row_split;
  p.rows = block_rows * row_blocks;
  p.row_begin = row_split > 1 ? tp_rank_ * block_rows : 0;
  p.cols = full_cols / col_split;
  p.col_begin = col_split > 1 ? tp_rank_ * p.cols : 0;
  p.offset = total_;
  p.full_offset = full_total_;
  total_ += p.numel();
  full_total_ += full_rows * full_cols;
  entries_.push_back(std::move(p));
  return static_cast<int>(entries_.size()) - 1;
}

int ParameterTable::find(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {

// Calls f(local index, full index) for every element of every slice (replicated tensors only when asked).
template <class F>
void for_each_element(const ParameterTable& local, bool with_replicated, F&& f) {
  for (const ParameterInfo& p : local.entries()) {
    if (p.replicated() && !with_replicated) continue;
#pragma omp parallel for
    for (int64_t r = 0; r < p.rows; ++r)
      for (int64_t c = 0; c < p.cols; ++c) f(p.offset + r * p.cols + c, p.full_offset + p.full_index(r, c));
  }
}

}  // namespace

void place_in_full(const ParameterTable& local, const float* values, float* full, bool with_replicated) {
  for_each_element(local, with_replicated, [&](int64_t i, int64_t k) { full[k] = values[i]; });
}

std::vector<float> initial_parameters(const ModelConfig& config, const ParameterTable& table, uint64_t seed) {
  std::vector<float> values(table.total_elements());
  // Each value depends on its index in the whole model's table, so every tensor-parallel layout starts alike.
  for (const ParameterInfo& p : table.entries()) {
#pragma omp parallel for
    for (int64_t r = 0; r < p.rows; ++r)
      for (int64_t c = 0; c < p.cols; ++c) {
        const auto k = static_cast<uint64_t>(p.full_offset + p.full_index(r, c));
        values[p.offset + r * p.cols + c] = p.is_vector ? 1.0f : static_cast<float>(config.init_std * normal(seed, k));
      }
  }
  return values;
}

}  // namespace ratplus
