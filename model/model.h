// The whole model: parameters and gradients (one flat buffer each, laid out by the ParameterTable),
// activations planned per batch shape, and the forward / backward orchestration over the blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/model_config.h"
#include "model/blocks.h"
#include "model/parameters.h"
#include "model/pattern.h"
#include "parallel/communicator.h"

namespace ratplus {

// Bytes a run will allocate, by purpose, known before anything is allocated.
struct MemoryPlan {
  std::vector<std::pair<std::string, size_t>> items;
  size_t total() const {
    size_t sum = 0;
    for (const auto& item : items) sum += item.second;
    return sum;
  }
};

// The f32 master parameters a rank keeps under ZeRO-1 with mixed precision: the range [begin, end) of its
// flat parameter vector (the bf16 copy stays whole).
struct MasterShard {
  int64_t begin = 0, end = 0;
};

// Called during the backward pass with an offset: the gradients [offset, N) of the flat vector are final
// (offsets only decrease; the last call passes 0).
using GradientsReady = std::function<void(int64_t offset)>;

class Model {
 public:
  // dtype is the type of activations: f32, f64 (CPU, for gradient checks) or bf16 (GPU mixed precision:
  // f32 master parameters and gradients, a bf16 copy of the parameters for the forward and backward).
  // With a tensor-parallel group `tp` of more than one rank, this rank holds and runs its slices of the
  // model (ParameterTable(config, tp->rank(), tp->size())); every rank of the group takes part in each call.
  // With a master shard (bf16 only), f32 master parameters exist for that range only.
  Model(const ModelConfig& config, Device device, DType dtype, Communicator* tp = nullptr,
        std::optional<MasterShard> master = std::nullopt);
  ~Model();

  // What a model with these settings allocates: parameters, gradients, the bf16 copy and the activations
  // of one micro-batch of `batch` sequences (all layers when training, one layer when evaluating), on one
  // of tp_size tensor-parallel ranks, whose f32 master parameters are spread over master_shards ranks.
  static MemoryPlan memory_plan(const ModelConfig& config, DType dtype, int64_t batch, int64_t seq_len,
                                bool training, int tp_size = 1, int master_shards = 1);

  const ModelConfig& config() const { return config_; }
  const ParameterTable& table() const { return table_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

  // The flat f32 master parameters (all N, or the master shard's range), the flat gradient vector ([1, N])
  // and per-tensor views into them.
  Tensor parameters() const { return params_.get(0); }
  bool master_sharded() const { return master_.end - master_.begin < table_.total_elements(); }
  Tensor gradients() const { return grads_.get(0); }
  // The bf16 copy of the parameters under mixed precision (refreshed by the optimizer), else empty.
  Tensor low_precision_parameters() const { return mixed_precision() ? weights_.get(0) : Tensor{}; }
  bool mixed_precision() const { return dtype_ == DType::bf16; }
  Tensor parameter(int index) const;  // not with a master shard
  Tensor gradient(int index) const;

  // Normal(0, init_std) matrices, unit norm weights (SPEC §2); depends only on the seed (not on the layout).
  void init_parameters(uint64_t seed);
  // Flat float32 values in table order (this rank's table; the checkpoint layout without tensor
  // parallelism), converted to the compute type. With a master shard, set keeps the f32 values of the shard
  // (and the bf16 copy of all), and get returns the shard's values only.
  void set_parameters(const std::vector<float>& values);
  std::vector<float> get_parameters() const;

  void zero_gradients();

  // Cross-entropy of a batch of `batch` sequences of `seq_len` tokens (host arrays, row-major,
  // targets < 0 ignored) under `pattern`. Forward only; activation memory is one layer's worth.
  LossSum evaluate(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len,
                   const Pattern& pattern);

  // Forward and backward: returns the loss and adds weight · ∂(mean loss)/∂θ to the gradients
  // (nothing when every label is ignored), telling `ready` as parts of the gradients become final.
  LossSum forward_backward(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len,
                           const Pattern& pattern, double weight, const GradientsReady& ready = {});

  // forward_backward in three parts, so that the middle one can be captured in a CUDA graph and replayed:
  // stage the batch (copies the tokens to the GPU, or keeps the pointers to the host arrays on the CPU;
  // may allocate the activations), run the step (only work ordered on the GPU context's stream: no
  // allocation, no host synchronisation), read the loss (one synchronisation).
  void stage_tokens(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len);
  void staged_forward_backward(const Pattern& pattern, double weight);
  LossSum staged_loss() const;

 private:
  struct Workspace;
  Workspace& workspace(int64_t batch, int64_t seq_len, bool training);
  LossSum run(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len, const Pattern& pattern,
              bool training, double weight, const GradientsReady& ready);
  Workspace& stage(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len, bool training);
  void step(Workspace& ws, const Pattern& pattern, bool training, double weight, const GradientsReady& ready);
  LossSum staged_loss(const Workspace& ws) const;
  TemporalMixingWeights temporal_weights(const Tensor& flat, int64_t layer) const;
  ChannelMixingWeights channel_weights(const Tensor& flat, int64_t layer) const;
  Tensor view(const Tensor& flat, int index) const;

  ModelConfig config_;
  ParameterTable table_;
  Communicator* tp_;
  MasterShard master_;
  Device device_;
  DType dtype_;        // activations
  DType param_dtype_;  // parameters, gradients and statistics (rstd, log-sum-exp, losses)
  Tensor compute_weights() const { return mixed_precision() ? weights_.get(0) : parameters(); }

  Arena params_, grads_, weights_;
  std::unique_ptr<Workspace> training_workspace_, evaluation_workspace_;
};

}  // namespace ratplus
