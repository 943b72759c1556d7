// The whole model as inference sees it: its weights (one flat buffer in the compute type, laid out by the
// ParameterTable) and the forward pass embedding → L × (temporal mixing, channel mixing) → output head, with
// the backward as a separate call after a training forward. Training state — f32 master weights under
// mixed precision, gradients, optimizer moments, ZeRO-1 ranges — belongs to the trainer (trainer/optimizer.h):
// a model made for evaluation or decoding allocates none of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/buffer.h"
#include "core/memory_plan.h"
#include "core/model_config.h"
#include "model/blocks.h"
#include "model/parameters.h"
#include "model/pattern.h"
#include "parallel/communicator.h"

namespace ratplus {

struct Activations;

// Called during the backward pass with an offset: the gradients [offset, N) of the flat vector are final
// (offsets only decrease; the last call passes 0).
using GradientsReady = std::function<void(int64_t offset)>;

// What a forward pass reads: `batch` sequences of `seq` tokens (host, row-major: row b·seq + t) under an
// attention pattern. A training forward's tokens must stay valid until its backward().
// RAT+ models carry a recurrent state from one forward to the next (a prefill hands it to decoding): per
// layer, k̃ and ṽ of each sequence's last position ([batch, this rank's attention width], gradient_dtype(), on
// the model's device). `initial_state` (empty: zeros) is the state before the first token; `final_state`
// (empty: not written) receives the state after the last. Attention sees only the keys of this forward.
// `layer_keys` (when set) receives each layer's attention keys (after RoPE) and values, [batch · seq, this
// rank's attention width] each, while they exist: a prefill fills a decoding cache from them.
using LayerKeys = std::function<void(int64_t layer, const Tensor& keys, const Tensor& values)>;
struct ForwardInput {
  const int32_t* tokens;
  int64_t batch, seq;
  const Pattern& pattern;
  std::span<const RecurrenceState> initial_state = {};
  std::span<const RecurrenceState> final_state = {};
  LayerKeys layer_keys = {};
};

// What a forward pass produces at the top of the model:
// - the cross-entropy against `targets` (host [batch · seq], < 0 ignored), computed in row chunks so the
//   logits of a batch never exist whole. With a non-empty `grads` (the flat [1, N] gradient vector in
//   gradient_dtype()) the pass is a training forward: it keeps every layer's activations for backward(), and
//   each chunk's logits are turned into their gradient at once, adding weight · ∂(mean loss)/∂θ of the head
//   and the final norm to `grads` (so the logits are computed exactly once);
// - the logits of chosen rows (`rows`, indices into the batch · seq rows) into `logits`
//   [rows.size(), vocab_size / tp] (this rank's vocabulary slice), in gradient_dtype();
// - nothing (std::monostate): the pass only runs the layers (a prefill; decoding state builds on this).
struct LossOutput {
  const int32_t* targets = nullptr;
  Tensor grads = {};
  double weight = 0;
};
struct LogitsOutput {
  std::span<const int64_t> rows;
  Tensor logits;
};
using ForwardOutput = std::variant<std::monostate, LossOutput, LogitsOutput>;

class Model {
 public:
  // dtype is the type of activations and weights: f32, f64 (CPU, for gradient checks) or bf16 (GPU; the
  // trainer keeps f32 master weights beside them). With a tensor-parallel group `tp` of more than one rank,
  // this rank holds and runs its slices of the model (ParameterTable(config, tp->rank(), tp->size())); every
  // rank of the group takes part in each call.
  Model(const ModelConfig& config, Device device, DType dtype, Communicator* tp = nullptr);
  ~Model();

  // What a model with these settings allocates: its weights and the activations of one micro-batch of `batch`
  // sequences (all layers when training, one layer otherwise), on one of tp_size tensor-parallel ranks.
  static MemoryPlan memory_plan(const ModelConfig& config, DType dtype, int64_t batch, int64_t seq_len,
                                bool training, int tp_size = 1);

  const ModelConfig& config() const { return config_; }
  const ParameterTable& table() const { return table_; }
  Communicator* tp() const { return tp_; }  // the tensor-parallel group, or nullptr
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  // The type of gradients, statistics and logits: f32, or f64 for an f64 model.
  DType gradient_dtype() const { return stat_dtype_; }
  static DType gradient_dtype(DType dtype) { return dtype == DType::f64 ? DType::f64 : DType::f32; }

  // The flat weights [1, N] in the compute type, and a view of one tensor (of the weights or of any flat
  // vector laid out like them, e.g. the gradients).
  Tensor weights() const { return weights_.get(0); }
  Tensor view(const Tensor& flat, int index) const;

  // The initial parameters of SPEC §2 (model/parameters.h).
  void init_parameters(uint64_t seed) { set_parameters(initial_parameters(config_, table_, seed)); }
  // Flat float32 values in table order (this rank's table), converted to the compute type (bf16 rounds to
  // nearest even), and back.
  void set_parameters(const std::vector<float>& values);
  std::vector<float> get_parameters() const;

  // One forward pass (see ForwardOutput); returns the loss of a LossOutput (else zero).
  LossSum forward(const ForwardInput& input, const ForwardOutput& output);
  // The same in three parts, so that the middle one can be captured in a CUDA graph and replayed: stage()
  // copies the tokens and targets to the model's device (on the CPU it keeps the caller's pointers) and counts
  // the labels, allocating the activations of a new batch shape; forward_staged() runs the pass on the staged
  // tokens, enqueueing work on the GPU context's stream only (no allocation, no host synchronisation; the
  // gradient scale of a training forward is fixed by the staged label count); staged_loss() reads the loss
  // of the last forward (one synchronisation).
  void stage(const ForwardInput& input, const ForwardOutput& output);
  void forward_staged(const ForwardInput& input, const ForwardOutput& output);
  LossSum staged_loss() const;
  // The backward pass of the last training forward: adds weight · ∂(mean loss)/∂θ of the layers and the
  // embedding to `grads` (the same vector the forward was given), telling `ready` as parts of it become final.
  void backward(Tensor grads, const GradientsReady& ready = {});

 private:
  Activations& activations(int64_t batch, int64_t seq_len, bool training);
  TemporalMixingWeights temporal_weights(const Tensor& flat, int64_t layer) const;
  ChannelMixingWeights channel_weights(const Tensor& flat, int64_t layer) const;
  void logits(const Dims& dims, Activations& a, const LogitsOutput& out);

  ModelConfig config_;
  ParameterTable table_;
  Communicator* tp_;
  Device device_;
  DType dtype_;       // weights and activations
  DType stat_dtype_;  // gradients and statistics (rstd, log-sum-exp, losses)
  Arena weights_;
  std::unique_ptr<Activations> training_activations_, inference_activations_;
  const Activations* last_loss_ = nullptr;  // the activations whose loss the last forward computed

  // What backward() needs from the last training forward.
  struct PendingBackward {
    bool pending = false;
    int64_t batch = 0, seq = 0;
    std::vector<std::vector<KeySet>> head_keys;
    Tensor grads;
  } last_;
};

}  // namespace ratplus
