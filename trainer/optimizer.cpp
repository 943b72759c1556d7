// Gradients, AdamW moments, master weights and the ZeRO-1 update (see optimizer.h).
#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <span>

namespace ratplus {

namespace {

// ZeRO-1 ranges of n parameters over `ranks` data-parallel ranks: rank r owns [r·⌈n/ranks⌉, …) (clipped).
std::vector<int64_t> zero1_ranges(int64_t n, int64_t ranks) {
  const int64_t per_rank = (n + ranks - 1) / ranks;
  std::vector<int64_t> ranges;
  for (int64_t r = 0; r <= ranks; ++r) ranges.push_back(std::min(n, r * per_rank));
  return ranges;
}

}  // namespace

Optimizer::Optimizer(Model& model, Communicator& dp, Communicator& tp, bool zero1)
    : model_(model),
      dp_(dp),
      tp_(tp),
      sharded_(zero1 && dp.size() > 1),
      separate_master_(model.dtype() == DType::bf16),
      ranges_(zero1_ranges(model.table().total_elements(), sharded_ ? dp.size() : 1)) {
  const int64_t own = owned_end() - owned_begin();
  grads_.reserve("gradients", 1, model.table().total_elements(), model.gradient_dtype());
  grads_.allocate(model.device());
  moments_.reserve("adam/m", 1, own, DType::f32);
  moments_.reserve("adam/v", 1, own, DType::f32);
  moments_.allocate(model.device());
  if (separate_master_) {
    master_.reserve("master weights (f32)", 1, own, DType::f32);
    master_.allocate(model.device());
  }
}

MemoryPlan Optimizer::memory_plan(const ModelConfig& config, DType dtype, int tp_size, int shards) {
  const auto n = static_cast<size_t>(ParameterTable(config, 0, tp_size).total_elements());
  const size_t own = (n + shards - 1) / shards;
  const std::string share = shards > 1 ? fmt::format(", 1/{} with ZeRO-1", shards) : std::string();
  MemoryPlan plan;
  if (dtype == DType::bf16) plan.items.emplace_back(fmt::format("master weights (f32{})", share), own * 4);
  plan.items.emplace_back("gradients", n * dtype_size(Model::gradient_dtype(dtype)));
  plan.items.emplace_back(fmt::format("AdamW moments (f32 m and v{})", share), 2 * 4 * own);
  return plan;
}

void Optimizer::zero_gradients() { zero_tensor(gradients()); }

Tensor Optimizer::master() const {
  if (separate_master_) return master_.get(0);
  return model_.weights().cols_slice(owned_begin(), owned_end() - owned_begin());
}

void Optimizer::set_parameters(const std::vector<float>& values) {
  model_.set_parameters(values);
  if (separate_master_) from_host_floats(master(), {values.begin() + owned_begin(), values.begin() + owned_end()});
}

double Optimizer::global_grad_norm() {
  const Tensor grads = gradients();
  const int64_t begin = owned_begin(), end = owned_end();
  double sum = 0;
  if (tp_.size() == 1) {
    sum = sum_of_squares(grads.cols_slice(begin, end - begin));
  } else {
    for (const ParameterInfo& p : model_.table().entries()) {
      const int64_t b = std::max(begin, p.offset), e = std::min(end, p.offset + p.numel());
      if (b < e && (!p.replicated() || tp_.rank() == 0)) sum += sum_of_squares(grads.cols_slice(b, e - b));
    }
  }
  if (sharded_) dp_.allreduce_sum(std::span<double>(&sum, 1));
  tp_.allreduce_sum(std::span<double>(&sum, 1));
  return std::sqrt(sum);
}

void Optimizer::update(const AdamWStep& step) {
  const int64_t begin = owned_begin(), count = owned_end() - owned_begin();
  const Tensor weights = model_.weights();
  adamw_update(master(), gradients().cols_slice(begin, count), moment(0), moment(1), step,
               separate_master_ ? weights.cols_slice(begin, count) : Tensor{});
  if (sharded_) dp_.allgather(weights, ranges_);
}

}  // namespace ratplus
