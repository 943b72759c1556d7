// Which rank sends which part of each full tensor when a checkpoint is gathered through one rank (see
// distributed_checkpoint.h). Pure arithmetic on the ranks' layouts, so every rank computes the same plan.
//
// Rank r holds, for each tensor group, a range [begin, end) of the flat vector of its tensor-parallel slice
// table ParameterTable(model, tp_rank, tp_size). Each element of each full tensor is sent by exactly one
// rank: replicated tensors (norm weights) by tensor-parallel rank 0 only; within the ranks of one
// tensor-parallel rank, ordered by where their ranges begin (then by rank), each sends what its range adds
// beyond the ranges before it. ZeRO-1 ranges thus send what they own; whole copies are sent by one replica.
#pragma once

#include <cstdint>
#include <vector>

#include "core/model_config.h"
#include "model/parameters.h"

namespace ratplus {

struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct RankLayout {
  int tp_rank = 0;
  std::vector<Range> held;  // per tensor group, in the rank's slice table's flat vector
};

class GatherPlan {
 public:
  // ranks[r]: the layout of rank r of the gathering group (all with the same number of groups). The ranks of
  // each tensor-parallel rank must hold, between them, every element of its slice table (else an internal
  // error).
  GatherPlan(const ModelConfig& model, int tp_size, std::vector<RankLayout> ranks);

  int ranks() const { return static_cast<int>(ranks_.size()); }
  const ParameterTable& full() const { return full_; }
  // The slice table of a rank.
  const ParameterTable& slices(int rank) const { return tables_[ranks_[rank].tp_rank]; }

  // What rank `rank` sends of tensor `tensor` (an index of the tables' entries) in group `group`: a range of
  // its slice table's flat vector, inside that tensor's slice; empty when it sends nothing.
  Range part(int group, int tensor, int rank) const;
  // The gather's offsets for one tensor: rank r's part lands at [offsets[r], offsets[r+1]) of a buffer of
  // offsets.back() = the full tensor's element count.
  std::vector<int64_t> offsets(int group, int tensor) const;
  // Whether the gathered buffer already is the full tensor (as with one tensor-parallel rank whose ranks send
  // their parts in rank order), so the gather can land in its final place and place_parts is not needed.
  bool gathers_in_place(int group, int tensor) const;

 private:
  ParameterTable full_;
  std::vector<ParameterTable> tables_;  // per tensor-parallel rank
  std::vector<RankLayout> ranks_;
  std::vector<std::vector<Range>> sent_;  // per group and rank: the range it sends of its vector
};

// Writes the parts of one tensor, gathered by `plan.offsets(group, tensor)` into `parts`, to their places in
// the full tensor `full` (row-major, the tensor's full_rows × full_cols).
void place_parts(const GatherPlan& plan, int group, int tensor, const float* parts, float* full);

}  // namespace ratplus
