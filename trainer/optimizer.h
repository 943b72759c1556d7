// The training state of a model and the update that uses it: the gradients (one flat vector laid out like
// the weights), AdamW moments, and under bf16 mixed precision the f32 master weights that the bf16 model
// weights are rounded from. With ZeRO-1 over the data-parallel group, rank r owns the range
// [ranges()[r], ranges()[r+1]) of its flat vector: gradients are reduce-scattered to the owners, each rank keeps
// the moments (and the f32 master weights) of its range only, updates it, and the updated weights are
// all-gathered. Global-norm clipping sums the squared gradients each rank owns over the whole grid.
// The Model itself holds only its weights, so evaluation and decoding allocate none of this.
#pragma once

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "kernels/optimizer.h"
#include "model/model.h"
#include "parallel/communicator.h"

namespace ratplus {

class Optimizer {
 public:
  // Allocates gradients, moments and (bf16 models) master weights on the model's device. With zero1 and a
  // data-parallel group of more than one rank, the moments and master weights cover this rank's range only.
  // `tp` is the model's tensor-parallel group (one rank without tensor parallelism).
  Optimizer(Model& model, Communicator& dp, Communicator& tp, bool zero1);

  // What an optimizer for such a model allocates per rank (dtype: the model's), with the ZeRO-1 share over
  // `shards` data-parallel ranks.
  static MemoryPlan memory_plan(const ModelConfig& config, DType dtype, int tp_size, int shards);

  bool sharded() const { return sharded_; }
  // The ZeRO-1 ranges (one rank owning everything without ZeRO-1), and this rank's.
  const std::vector<int64_t>& ranges() const { return ranges_; }
  int64_t owned_begin() const { return ranges_[sharded_ ? dp_.rank() : 0]; }
  int64_t owned_end() const { return ranges_[sharded_ ? dp_.rank() + 1 : 1]; }

  // The flat gradient vector [1, N] (gradient dtype of the model).
  Tensor gradients() const { return grads_.get(0); }
  void zero_gradients();

  // The weights the update works on, over the owned range: the f32 master weights (bf16 models) or the
  // model's own weights. And the AdamW moments m (0) and v (1) of the owned range.
  Tensor master() const;
  Tensor moment(int which) const { return moments_.get(which); }

  // Sets the model's weights and the master weights from this rank's full flat values (its table order).
  void set_parameters(const std::vector<float>& values);

  // √(Σ g²) over the whole model, after the gradients were summed over the data-parallel ranks (collective
  // over the grid): the owned range of each rank's slices, replicated tensors counted on tp rank 0 only.
  double global_grad_norm();
  // One AdamW update of the owned range (SPEC §9), writing the bf16 model weights under mixed precision; with
  // ZeRO-1 the updated weights are then all-gathered.
  void update(const AdamWStep& step);

 private:
  Model& model_;
  Communicator& dp_;
  Communicator& tp_;
  bool sharded_;
  bool separate_master_;  // bf16 model: f32 master weights of the owned range beside the model's weights
  std::vector<int64_t> ranges_;
  Arena grads_, moments_, master_;
};

}  // namespace ratplus
