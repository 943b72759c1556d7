// The parameter table of a model (SPEC §7): every tensor's name, shape [out, in] and offset inside one
// contiguous buffer. Parameters, gradients and optimizer moments all share this layout, so whole-model
// operations (AdamW, gradient norms, checkpoint I/O) walk one flat array.
//
// Under tensor parallelism (Megatron layout, tp ranks) a rank's table holds its slices instead: the
// embedding / LM head by vocabulary rows, W_in by heads within each of its o, q, k, v, g row blocks, W_out by
// columns (heads), fc1 by rows and fc2 by columns; norm weights are replicated. Each entry says where its
// slice sits in the full tensor, so checkpoints (always full tensors) are written and read in any layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"

namespace ratplus {

struct ParameterInfo {
  std::string name;     // e.g. "layers/3/attn/in_proj/weight"
  int64_t rows = 0;     // out features of this rank's slice ([d] vectors have rows = 1)
  int64_t cols = 0;     // in features of this rank's slice
  int64_t offset = 0;   // element offset in this rank's flat buffer
  bool is_vector = false;  // stored as a 1-D dataset of length cols
  // The full tensor and the slice of it held here: `row_blocks` equal row blocks, from each the rows
  // [row_begin, row_begin + rows / row_blocks) of the block, and the columns [col_begin, col_begin + cols).
  int64_t full_rows = 0, full_cols = 0, full_offset = 0;  // full_offset: offset in the full (tp = 1) table
  int64_t row_blocks = 1, row_begin = 0, col_begin = 0;

  int64_t numel() const { return rows * cols; }
  // Every tensor-parallel rank holds the whole tensor.
  bool replicated() const { return rows == full_rows && cols == full_cols; }
  // Row-major index in the full tensor of this slice's element (r, c).
  int64_t full_index(int64_t r, int64_t c) const {
    const int64_t per_block = rows / row_blocks;
    return ((r / per_block) * (full_rows / row_blocks) + row_begin + r % per_block) * full_cols + col_begin + c;
  }
};

// Where each layer's tensors sit in the table.
struct LayerParameterIndex {
  int attn_norm, in_proj, out_proj, ffn_norm, fc1, fc2;
};

class ParameterTable {
 public:
  // The whole model (tp_size = 1), or the slices of tensor-parallel rank tp_rank of tp_size, which must
  // divide n_heads, d_ffn and vocab_size (see tensor_parallel_error).
  explicit ParameterTable(const ModelConfig& config, int tp_rank = 0, int tp_size = 1);

  const std::vector<ParameterInfo>& entries() const { return entries_; }
  int64_t total_elements() const { return total_; }
  // Index of a parameter by name, or -1.
  int find(const std::string& name) const;

  int embed() const { return embed_; }
  int final_norm() const { return final_norm_; }
  // The output head: the embedding itself when embeddings are tied.
  int lm_head() const { return lm_head_; }
  const LayerParameterIndex& layer(int64_t i) const { return layers_[i]; }

  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }
  // This rank's heads, FFN width and vocabulary rows [vocab_begin(), vocab_begin() + vocab_rows()).
  int64_t heads() const { return heads_; }
  int64_t ffn() const { return ffn_; }
  int64_t vocab_begin() const { return entries_[embed_].row_begin; }
  int64_t vocab_rows() const { return entries_[embed_].rows; }

 private:
  int add(std::string name, int64_t full_rows, int64_t full_cols, bool is_vector, int64_t row_blocks = 1,
          int64_t row_split = 1, int64_t col_split = 1);

  std::vector<ParameterInfo> entries_;
  std::vector<LayerParameterIndex> layers_;
  int embed_ = -1, final_norm_ = -1, lm_head_ = -1;
  int64_t total_ = 0, full_total_ = 0;
  int tp_rank_ = 0, tp_size_ = 1;
  int64_t heads_ = 0, ffn_ = 0;
};

// Why a model cannot be split over tp ranks ("" when it can): tp must divide n_heads, d_ffn and vocab_size.
std::string tensor_parallel_error(const ModelConfig& config, int tp);

// Writes a rank's flat values (laid out by `local`) into their places in full-model flat values (laid out by
// the whole model's ParameterTable); replicated tensors only when with_replicated.
void place_in_full(const ParameterTable& local, const float* values, float* full, bool with_replicated);

// Normal(0, init_std) matrices and unit norm weights (SPEC §2) as flat float32 values in the table's order; each
// value depends only on the seed and its index in the whole model, so every tensor-parallel layout starts alike.
std::vector<float> initial_parameters(const ModelConfig& config, const ParameterTable& table, uint64_t seed);

}  // namespace ratplus
