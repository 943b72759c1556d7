// Model orchestration: weight views, the activation plan of a batch shape, and the sequence
// embedding → L × (temporal mixing, channel mixing) → output head, and back.
#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <utility>

#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "model/activations.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/gpu_context.h"
#endif

namespace ratplus {

Model::Model(const ModelConfig& config, Device device, DType dtype, Communicator* tp)
    : config_(config),
      table_(config, tp ? tp->rank() : 0, tp ? tp->size() : 1),
      tp_(tp),
      device_(device),
      dtype_(dtype),
      stat_dtype_(gradient_dtype(dtype)) {
  check_internal(dtype != DType::bf16 || device == Device::cuda, "Model: bf16 activations need the GPU backend");
#ifdef RATPLUS_HAVE_CUDA
  if (device == Device::cuda) cuda::gpu_context();  // the thread's stream, cuBLASLt handle and scratch
#endif
  weights_.reserve(dtype == DType::bf16 ? "weights (bf16)" : "weights", 1, table_.total_elements(), dtype_);
  weights_.allocate(device);
}

Model::~Model() = default;

MemoryPlan Model::memory_plan(const ModelConfig& config, DType dtype, int64_t batch, int64_t seq_len, bool training,
                              int tp_size) {
  const ParameterTable table(config, 0, tp_size);
  MemoryPlan plan;
  plan.items.emplace_back(fmt::format("weights ({})", dtype_name(dtype)),
                          static_cast<size_t>(table.total_elements()) * dtype_size(dtype));
#ifdef RATPLUS_HAVE_CUDA
  if (dtype == DType::bf16)
    plan.items.emplace_back("GPU context (cuBLASLt workspace, reduction scratch)", cuda::GpuContext::scratch_bytes());
#endif
  const Activations a(config, table, std::nullopt, dtype, gradient_dtype(dtype), batch, seq_len, training);
  plan.items.emplace_back(fmt::format("activations ({} x {} tokens, {})", batch, seq_len,
                                      training ? "all layers kept for the backward" : "one layer at a time"),
                          a.arena.planned_bytes());
  return plan;
}

Tensor Model::view(const Tensor& flat, int index) const {
  const ParameterInfo& p = table_.entries().at(index);
  Tensor t = flat.cols_slice(p.offset, p.numel());
  return t.reshaped(p.rows, p.cols);
}

TemporalMixingWeights Model::temporal_weights(const Tensor& flat, int64_t layer) const {
  const LayerParameterIndex& l = table_.layer(layer);
  return {view(flat, l.attn_norm), view(flat, l.in_proj), view(flat, l.out_proj)};
}

ChannelMixingWeights Model::channel_weights(const Tensor& flat, int64_t layer) const {
  const LayerParameterIndex& l = table_.layer(layer);
  return {view(flat, l.ffn_norm), view(flat, l.fc1), view(flat, l.fc2)};
}

void Model::set_parameters(const std::vector<float>& values) {
  check_internal(static_cast<int64_t>(values.size()) == table_.total_elements(), "set_parameters: wrong size");
  if (dtype_ != DType::f64) return from_host_floats(weights(), values);  // bf16 rounds as the GPU converts
  std::vector<double> wide(values.begin(), values.end());
  const auto n = static_cast<int64_t>(wide.size());
  copy_tensor(weights(), Tensor{wide.data(), 1, n, n, DType::f64, Device::cpu});
}

std::vector<float> Model::get_parameters() const {
  if (dtype_ != DType::f64) return to_host_floats(weights());
  const int64_t n = table_.total_elements();
  std::vector<double> wide(n);
  copy_tensor(Tensor{wide.data(), 1, n, n, DType::f64, Device::cpu}, weights());
  return std::vector<float>(wide.begin(), wide.end());
}

Activations& Model::activations(int64_t batch, int64_t seq_len, bool training) {
  std::unique_ptr<Activations>& slot = training ? training_activations_ : inference_activations_;
  if (!slot || slot->batch != batch || slot->seq != seq_len) {
    slot.reset();  // free the old plan before allocating the new one
    last_loss_ = nullptr;
    if (training) last_.pending = false;
    slot = std::make_unique<Activations>(config_, table_, device_, dtype_, stat_dtype_, batch, seq_len, training);
  }
  return *slot;
}

// The final norm, then the logits of each run of consecutive chosen rows in one product.
void Model::logits(const Dims& dims, Activations& a, const LogitsOutput& out) {
  const auto n = static_cast<int64_t>(out.rows.size());
  require_input(out.logits.rows == n && out.logits.cols == table_.vocab_rows() && out.logits.dtype == stat_dtype_ &&
                    out.logits.device == device_,
                fmt::format("Model::forward: logits must be [{}, {}] {} on {}", n, table_.vocab_rows(),
                            dtype_name(stat_dtype_), device_name(device_)));
  const Tensor x = a.residual_before(2 * config_.n_layers);
  const Tensor w = weights();
  rmsnorm_forward(a.head.h, a.head.rstd, x, view(w, table_.final_norm()), dims.eps);
  for (int64_t i = 0; i < n;) {
    int64_t run = 1;
    while (i + run < n && out.rows[i + run] == out.rows[i] + run) ++run;
    require_input(out.rows[i] >= 0 && out.rows[i] + run <= dims.rows(),
                  fmt::format("Model::forward: logit row {} is outside the {} rows of the batch", out.rows[i],
                              dims.rows()));
    matmul(out.logits.rows_slice(i, run), a.head.h.rows_slice(out.rows[i], run), false, view(w, table_.lm_head()),
           true);
    i += run;
  }
}

namespace {

bool is_training(const ForwardOutput& output) {
  const auto* loss = std::get_if<LossOutput>(&output);
  return loss && !loss->grads.empty();
}

}  // namespace

LossSum Model::forward(const ForwardInput& input, const ForwardOutput& output) {
  stage(input, output);
  forward_staged(input, output);
  return std::holds_alternative<LossOutput>(output) ? staged_loss() : LossSum{};
}

void Model::stage(const ForwardInput& in, const ForwardOutput& output) {
  const auto* loss_out = std::get_if<LossOutput>(&output);
  Activations& a = activations(in.batch, in.seq, is_training(output));
  const int64_t rows = in.batch * in.seq;
  // Token ids on the model's device (on the CPU the caller's arrays are used).
  auto on_device = [&](const int32_t* host, int64_t slot) {
    if (device_ == Device::cpu) return host;
    copy_tensor(a.tokens.rows_slice(slot, 1), Tensor{const_cast<int32_t*>(host), 1, rows, rows, DType::i32, Device::cpu});
    return static_cast<const int32_t*>(a.tokens.rows_slice(slot, 1).ptr<int32_t>());
  };
  a.inputs = on_device(in.tokens, 0);
  a.targets = loss_out ? on_device(loss_out->targets, 1) : nullptr;
  a.labels = loss_out ? std::count_if(loss_out->targets, loss_out->targets + rows, [](int32_t t) { return t >= 0; }) : 0;
}

void Model::forward_staged(const ForwardInput& in, const ForwardOutput& output) {
  in.pattern.check_fits(config_.n_layers, config_.n_heads);
  const auto* loss_out = std::get_if<LossOutput>(&output);
  const bool training = is_training(output);
  check_internal(!training || !in.pattern.has_top_k(), "Model::forward: top-k patterns do not train");
  if (training)
    check_internal(loss_out->grads.numel() == table_.total_elements() && loss_out->grads.dtype == stat_dtype_ &&
                       loss_out->grads.device == device_,
                   "Model::forward: the gradients are a flat vector laid out like the weights");
  const auto layers_of = [&](std::span<const RecurrenceState> states, const char* what) {
    require_input(states.empty() || (config_.recurrence && static_cast<int64_t>(states.size()) == config_.n_layers),
                  fmt::format("Model::forward: the {} recurrent state needs one entry per layer of a RAT+ model", what));
  };
  layers_of(in.initial_state, "initial");
  layers_of(in.final_state, "final");
  check_internal(!training || in.initial_state.empty(), "Model::forward: training starts from the zero state");
  const std::unique_ptr<Activations>& slot = training ? training_activations_ : inference_activations_;
  check_internal(slot && slot->batch == in.batch && slot->seq == in.seq && slot->inputs &&
                     (!loss_out || slot->targets),
                 "Model::forward_staged: this batch was not staged");
  Activations& a = *slot;
  const Dims dims = Dims::of(config_, table_, in.batch, in.seq, tp_);
  const int64_t layers = config_.n_layers;
  const Tensor w = weights();
  std::vector<std::vector<KeySet>> head_keys(layers);
  std::vector<std::vector<BlockTopK>> head_blocks(layers);
  const int64_t first_head = table_.tp_rank() * dims.heads;  // this rank's heads under tensor parallelism
  for (int64_t i = 0; i < layers; ++i) {
    const std::vector<KeySet> keys = in.pattern.head_keys(i, config_.n_heads);
    head_keys[i].assign(keys.begin() + first_head, keys.begin() + first_head + dims.heads);
    if (!in.pattern.has_top_k()) continue;
    const std::vector<BlockTopK> blocks = in.pattern.head_blocks(i, config_.n_heads);
    head_blocks[i].assign(blocks.begin() + first_head, blocks.begin() + first_head + dims.heads);
  }

  embedding_forward(a.residual_before(0), a.inputs, view(w, table_.embed()), dims.vocab_begin);
  tensor_parallel_sum(dims, a.residual_before(0));
  for (int64_t i = 0; i < layers; ++i) {
    temporal_mixing_forward(dims, head_keys[i], temporal_weights(w, i), a.residual_before(2 * i),
                            a.residual_before(2 * i + 1), a.temporal_state(i),
                            in.initial_state.empty() ? RecurrenceState{} : in.initial_state[i],
                            in.final_state.empty() ? RecurrenceState{} : in.final_state[i], head_blocks[i]);
    if (in.layer_keys) {
      const TemporalMixingState& t = a.temporal_state(i);
      in.layer_keys(i, t.k_rot, config_.recurrence ? t.v_rec : t.z.cols_slice(3 * dims.attn_width(), dims.attn_width()));
    }
    channel_mixing_forward(dims, channel_weights(w, i), a.residual_before(2 * i + 1), a.residual_before(2 * i + 2),
                           a.channel_state(i));
  }
  last_.pending = false;
  last_loss_ = nullptr;
  if (const auto* out = std::get_if<LogitsOutput>(&output)) logits(dims, a, *out);
  if (!loss_out) return;

  const double grad_scale = training && a.labels > 0 ? loss_out->weight / static_cast<double>(a.labels) : 0.0;
  const Tensor& grads = loss_out->grads;
  output_head(dims, view(w, table_.final_norm()), view(w, table_.lm_head()), a.residual_before(2 * layers), a.targets,
              a.head, grad_scale, training ? view(grads, table_.final_norm()) : Tensor{},
              training ? view(grads, table_.lm_head()) : Tensor{}, a.d_residual);
  last_loss_ = &a;
  if (training) last_ = {grad_scale != 0.0, in.batch, in.seq, std::move(head_keys), grads};
}

LossSum Model::staged_loss() const {
  check_internal(last_loss_ != nullptr, "Model::staged_loss: the last forward computed no loss");
  double sum = 0;
  copy_tensor(Tensor{&sum, 1, 1, 1, DType::f64, Device::cpu}, last_loss_->head.loss_sum);
  return {sum, last_loss_->labels};
}

void Model::backward(Tensor grads, const GradientsReady& ready) {
  check_internal(grads.data == last_.grads.data, "Model::backward: not the gradients of the last training forward");
  if (!last_.pending) return;  // every label was ignored: no gradient
  last_.pending = false;
  Activations& a = *training_activations_;
  const Dims dims = Dims::of(config_, table_, last_.batch, last_.seq, tp_);
  const Tensor w = weights();
  // The table is laid out embedding, layers 0 … L−1, final norm (, head): the backward finishes gradients
  // from the end of the flat buffer towards its start.
  const auto& entries = table_.entries();
  if (ready) ready(entries[table_.final_norm()].offset);
  for (int64_t i = config_.n_layers - 1; i >= 0; --i) {
    channel_mixing_backward(dims, channel_weights(w, i), channel_weights(grads, i), a.residual_before(2 * i + 1),
                            a.channel_state(i), a.d_residual, a.d_residual, a.channel_scratch);
    temporal_mixing_backward(dims, last_.head_keys[i], temporal_weights(w, i), temporal_weights(grads, i),
                             a.residual_before(2 * i), a.temporal_state(i), a.d_residual, a.d_residual,
                             a.temporal_scratch);
    if (ready) ready(entries[table_.layer(i).attn_norm].offset);
  }
  embedding_backward(view(grads, table_.embed()), a.inputs, a.d_residual, dims.vocab_begin);
  if (ready) ready(0);
}

}  // namespace ratplus
