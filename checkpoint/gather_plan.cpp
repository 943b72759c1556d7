// The plan of who sends what when a checkpoint is gathered (see gather_plan.h).
#include "checkpoint/gather_plan.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "core/error.h"

namespace ratplus {

GatherPlan::GatherPlan(const ModelConfig& model, int tp_size, std::vector<RankLayout> ranks)
    : full_(model), ranks_(std::move(ranks)) {
  for (int t = 0; t < tp_size; ++t) tables_.emplace_back(model, t, tp_size);
  check_internal(!ranks_.empty(), "checkpoint gather: no ranks");
  sent_.assign(ranks_[0].held.size(), std::vector<Range>(ranks_.size()));
  for (const RankLayout& rank : ranks_)
    check_internal(rank.held.size() == sent_.size() && rank.tp_rank >= 0 && rank.tp_rank < tp_size,
                   "checkpoint gather: inconsistent rank layouts");
  for (size_t group = 0; group < sent_.size(); ++group) {
    for (int t = 0; t < tp_size; ++t) {
      std::vector<int> column;  // the ranks of tensor-parallel rank t, by where their ranges begin
      for (int r = 0; r < this->ranks(); ++r)
        if (ranks_[r].tp_rank == t) column.push_back(r);
      std::stable_sort(column.begin(), column.end(), [&](int a, int b) {
        return ranks_[a].held[group].begin < ranks_[b].held[group].begin;
      });
      int64_t covered = 0;
      for (const int r : column) {
        const Range held = ranks_[r].held[group];
        check_internal(held.begin <= covered, "checkpoint gather: the ranks' ranges leave a gap");
        sent_[group][r] = held.end > covered ? Range{covered, held.end} : Range{covered, covered};
        covered = std::max(covered, held.end);
      }
      check_internal(covered == tables_[t].total_elements(),
                     "checkpoint gather: the ranks' ranges do not cover a tensor-parallel slice table");
    }
  }
}

Range GatherPlan::part(int group, int tensor, int rank) const {
  const ParameterInfo& slice = slices(rank).entries()[tensor];
  if (slice.replicated() && ranks_[rank].tp_rank != 0) return {};
  const Range sent = sent_[group][rank];
  const int64_t begin = std::max(sent.begin, slice.offset), end = std::min(sent.end, slice.offset + slice.numel());
  return begin < end ? Range{begin, end} : Range{};
}

std::vector<int64_t> GatherPlan::offsets(int group, int tensor) const {
  std::vector<int64_t> offsets(ranks() + 1, 0);
  for (int r = 0; r < ranks(); ++r) offsets[r + 1] = offsets[r] + part(group, tensor, r).size();
  const ParameterInfo& whole = full_.entries()[tensor];
  if (offsets.back() != whole.numel())
    throw std::logic_error("checkpoint gather: the parts do not make up " + whole.name);
  return offsets;
}

bool GatherPlan::gathers_in_place(int group, int tensor) const {
  const std::vector<int64_t> at = offsets(group, tensor);
  for (int r = 0; r < ranks(); ++r) {
    const Range sent = part(group, tensor, r);
    if (sent.size() == 0) continue;
    const ParameterInfo& slice = slices(r).entries()[tensor];
    if (!slice.replicated() || sent.begin - slice.offset != at[r]) return false;
  }
  return true;
}

void place_parts(const GatherPlan& plan, int group, int tensor, const float* parts, float* full) {
  const std::vector<int64_t> offsets = plan.offsets(group, tensor);
  for (int r = 0; r < plan.ranks(); ++r) {
    const ParameterInfo& slice = plan.slices(r).entries()[tensor];
    const Range part = plan.part(group, tensor, r);
    const float* from = parts + offsets[r];
    // Row by row of the slice: each row's elements are consecutive in the full tensor as well.
    for (int64_t at = part.begin; at < part.end;) {
      const int64_t row = (at - slice.offset) / slice.cols, col = (at - slice.offset) % slice.cols;
      const int64_t count = std::min(part.end - at, slice.cols - col);
      std::memcpy(full + slice.full_index(row, col), from, static_cast<size_t>(count) * sizeof(float));
      from += count;
      at += count;
    }
  }
}

}  // namespace ratplus
