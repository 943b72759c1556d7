// Model orchestration: parameter views, the activation plan for a batch shape, and the forward/backward
// sequence embedding → L × (temporal mixing, channel mixing) → output head, and back.
#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <fmt/format.h>
#include <utility>

#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/gpu_context.h"
#endif

namespace ratplus {

namespace {

// Rows of logits computed at once: about 8M elements, so memory stays bounded for a 32k vocabulary.
int64_t logits_chunk_rows(int64_t rows, int64_t vocab) {
  return std::clamp<int64_t>((int64_t{8} << 20) / vocab, 1, rows);
}

}  // namespace

// Activations of one batch shape. Training keeps every layer's state and the residual stream after every
// block; evaluation keeps one layer's state and two residual buffers.
struct Model::Workspace {
  int64_t batch = 0, seq = 0;
  Arena arena;
  std::vector<Tensor> residual;  // training: 2L + 1 (before, between and after the blocks); eval: 2
  std::vector<TemporalMixingState> temporal;
  std::vector<ChannelMixingState> channel;
  TemporalMixingScratch temporal_scratch;
  ChannelMixingScratch channel_scratch;
  OutputHeadState head;
  Tensor d_residual;
  Tensor tokens;  // [2, rows] i32 on the GPU: inputs and targets (on the CPU the caller's arrays are used)
  // The staged batch: its tokens on the device of the model, and how many targets are labels.
  const int32_t* inputs = nullptr;
  const int32_t* targets = nullptr;
  int64_t labels = 0;

  // With device unset, only plans (for memory_plan); otherwise allocates on the device.
  Workspace(const ModelConfig& c, const ParameterTable& table, std::optional<Device> device, DType dtype,
            DType stat_dtype, int64_t batch_, int64_t seq_, bool training)
      : batch(batch_), seq(seq_) {
    // Widths of this rank's share under tensor parallelism: heads (attention width a), FFN and vocabulary.
    const int64_t rows = batch * seq, d = c.d_model, f = table.ffn(), h = table.heads(), a = h * c.head_dim();
    const int64_t z_cols = table.entries()[table.layer(0).in_proj].rows, vocab = table.vocab_rows();
    const int64_t layers = training ? c.n_layers : 1;
    std::vector<std::pair<Tensor*, int>> bindings;
    auto plan = [&](Tensor& t, std::string name, int64_t r, int64_t cols, DType type) {
      bindings.emplace_back(&t, arena.reserve(std::move(name), r, cols, type));
    };
    residual.resize(training ? 2 * c.n_layers + 1 : 2);
    for (size_t i = 0; i < residual.size(); ++i) plan(residual[i], fmt::format("residual/{}", i), rows, d, dtype);
    temporal.resize(layers);
    channel.resize(layers);
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = fmt::format("layers/{}/", i);
      TemporalMixingState& t = temporal[i];
      plan(t.h, p + "attn/h", rows, d, dtype);
      plan(t.rstd, p + "attn/rstd", 1, rows, stat_dtype);
      plan(t.z, p + "attn/z", rows, z_cols, dtype);
      if (c.recurrence) {
        plan(t.k_rec, p + "attn/k_rec", rows, a, dtype);
        plan(t.v_rec, p + "attn/v_rec", rows, a, dtype);
      }
      plan(t.q_rot, p + "attn/q_rot", rows, a, dtype);
      plan(t.k_rot, p + "attn/k_rot", rows, a, dtype);
      plan(t.att, p + "attn/out", rows, a, dtype);
      plan(t.lse, p + "attn/lse", rows, h, stat_dtype);
      plan(t.gated, p + "attn/gated", rows, a, dtype);
      ChannelMixingState& m = channel[i];
      plan(m.h, p + "ffn/h", rows, d, dtype);
      plan(m.rstd, p + "ffn/rstd", 1, rows, stat_dtype);
      plan(m.pre, p + "ffn/pre", rows, f, dtype);
      plan(m.act, p + "ffn/act", rows, f, dtype);
    }
    const int64_t chunk = logits_chunk_rows(rows, vocab);
    plan(head.h, "head/h", rows, d, dtype);
    plan(head.rstd, "head/rstd", 1, rows, stat_dtype);
    plan(head.logits, "head/logits", chunk, vocab, dtype);
    plan(head.row_loss, "head/row_loss", 1, chunk, stat_dtype);
    plan(head.partials, "head/partials", 2 * table.tp_size(), chunk, stat_dtype);
    plan(head.loss_sum, "head/loss_sum", 1, 1, DType::f64);
    if (training) {
      TemporalMixingScratch& s = temporal_scratch;
      plan(s.d_gated, "grad/attn/gated", rows, a, dtype);
      plan(s.d_att, "grad/attn/out", rows, a, dtype);
      plan(s.dq_rot, "grad/attn/q_rot", rows, a, dtype);
      plan(s.dk_rot, "grad/attn/k_rot", rows, a, dtype);
      if (c.recurrence) {
        plan(s.dk_rec, "grad/attn/k_rec", rows, a, dtype);
        plan(s.dv_rec, "grad/attn/v_rec", rows, a, dtype);
      }
      plan(s.dz, "grad/attn/z", rows, z_cols, dtype);
      plan(s.dh, "grad/attn/h", rows, d, dtype);
      plan(channel_scratch.d_act, "grad/ffn/act", rows, f, dtype);
      plan(channel_scratch.dh, "grad/ffn/h", rows, d, dtype);
      plan(head.dh, "grad/head/h", rows, d, dtype);
      plan(d_residual, "grad/residual", rows, d, dtype);
    }
    if (device == Device::cuda) plan(tokens, "tokens", 2, rows, DType::i32);
    if (!device) return;
    arena.allocate(*device);
    for (auto& [tensor, handle] : bindings) *tensor = arena.get(handle);
  }
};

Model::Model(const ModelConfig& config, Device device, DType dtype, Communicator* tp,
             std::optional<MasterShard> master)
    : config_(config),
      table_(config, tp ? tp->rank() : 0, tp ? tp->size() : 1),
      tp_(tp),
      master_(master.value_or(MasterShard{0, table_.total_elements()})),
      device_(device),
      dtype_(dtype),
      param_dtype_(dtype == DType::bf16 ? DType::f32 : dtype) {
  check_internal(dtype != DType::bf16 || device == Device::cuda, "Model: bf16 activations need the GPU backend");
  const int64_t n = table_.total_elements();
  check_internal(0 <= master_.begin && master_.begin <= master_.end && master_.end <= n &&
                     (!master_sharded() || mixed_precision()),
                 "Model: a master shard is a range of the parameters under mixed precision");
  params_.reserve("parameters", 1, master_.end - master_.begin, param_dtype_);
  grads_.reserve("gradients", 1, n, param_dtype_);
#ifdef RATPLUS_HAVE_CUDA
  if (device == Device::cuda) cuda::gpu_context();  // the thread's stream, cuBLASLt handle and scratch
#endif
  params_.allocate(device);
  grads_.allocate(device);
  if (mixed_precision()) {
    weights_.reserve("parameters/bf16", 1, n, DType::bf16);
    weights_.allocate(device);
  }
}

Model::~Model() = default;

MemoryPlan Model::memory_plan(const ModelConfig& config, DType dtype, int64_t batch, int64_t seq_len, bool training,
                              int tp_size, int master_shards) {
  const DType param_type = dtype == DType::bf16 ? DType::f32 : dtype;
  const ParameterTable table(config, 0, tp_size);
  const auto n = static_cast<size_t>(table.total_elements());
  MemoryPlan plan;
  if (master_shards > 1)
    plan.items.emplace_back(fmt::format("parameters (f32 master, 1/{} with ZeRO-1)", master_shards),
                            (n + master_shards - 1) / master_shards * dtype_size(param_type));
  else
    plan.items.emplace_back("parameters", n * dtype_size(param_type));
  plan.items.emplace_back("gradients", n * dtype_size(param_type));
  if (dtype == DType::bf16) plan.items.emplace_back("parameters (bf16 copy)", n * 2);
#ifdef RATPLUS_HAVE_CUDA
  if (dtype == DType::bf16)
    plan.items.emplace_back("GPU context (cuBLASLt workspace, reduction scratch)", cuda::GpuContext::scratch_bytes());
#endif
  const Workspace ws(config, table, std::nullopt, dtype, param_type, batch, seq_len, training);
  plan.items.emplace_back(fmt::format("activations ({} x {} tokens, {})", batch, seq_len,
                                      training ? "all layers kept for the backward" : "one layer at a time"),
                          ws.arena.planned_bytes());
  return plan;
}

Tensor Model::view(const Tensor& flat, int index) const {
  const ParameterInfo& p = table_.entries().at(index);
  Tensor t = flat.cols_slice(p.offset, p.numel());
  return t.reshaped(p.rows, p.cols);
}

Tensor Model::parameter(int index) const {
  check_internal(!master_sharded(), "Model::parameter: the master parameters are sharded");
  return view(parameters(), index);
}
Tensor Model::gradient(int index) const { return view(gradients(), index); }

TemporalMixingWeights Model::temporal_weights(const Tensor& flat, int64_t layer) const {
  const LayerParameterIndex& l = table_.layer(layer);
  return {view(flat, l.attn_norm), view(flat, l.in_proj), view(flat, l.out_proj)};
}

ChannelMixingWeights Model::channel_weights(const Tensor& flat, int64_t layer) const {
  const LayerParameterIndex& l = table_.layer(layer);
  return {view(flat, l.ffn_norm), view(flat, l.fc1), view(flat, l.fc2)};
}

void Model::init_parameters(uint64_t seed) {
  std::vector<float> values(table_.total_elements());
  // Each value depends on its index in the whole model's table, so every tensor-parallel layout starts alike.
  for (const ParameterInfo& p : table_.entries()) {
#pragma omp parallel for
    for (int64_t r = 0; r < p.rows; ++r)
      for (int64_t c = 0; c < p.cols; ++c) {
        const auto k = static_cast<uint64_t>(p.full_offset + p.full_index(r, c));
        values[p.offset + r * p.cols + c] = p.is_vector ? 1.0f : static_cast<float>(config_.init_std * normal(seed, k));
      }
  }
  set_parameters(values);
}

void Model::set_parameters(const std::vector<float>& values) {
  check_internal(static_cast<int64_t>(values.size()) == table_.total_elements(), "set_parameters: wrong size");
  if (master_sharded()) {
    from_host_floats(parameters(), {values.begin() + master_.begin, values.begin() + master_.end});
    from_host_floats(weights_.get(0), values);  // rounds as the GPU's conversion does
    return;
  }
  Buffer host(values.size() * dtype_size(param_dtype_), Device::cpu);
  Tensor staged{host.data(), 1, table_.total_elements(), table_.total_elements(), param_dtype_, Device::cpu};
  if (param_dtype_ == DType::f32) {
    std::memcpy(host.data(), values.data(), values.size() * sizeof(float));
  } else {
    std::copy(values.begin(), values.end(), staged.ptr<double>());
  }
  copy_tensor(parameters(), staged);
  if (mixed_precision()) convert_tensor(weights_.get(0), parameters());
}

std::vector<float> Model::get_parameters() const {
  const int64_t n = master_.end - master_.begin;
  if (param_dtype_ == DType::f32) return to_host_floats(parameters());
  Buffer host(n * dtype_size(param_dtype_), Device::cpu);
  Tensor staged{host.data(), 1, n, n, param_dtype_, Device::cpu};
  copy_tensor(staged, parameters());
  return std::vector<float>(staged.ptr<double>(), staged.ptr<double>() + n);
}

void Model::zero_gradients() { zero_tensor(gradients()); }

Model::Workspace& Model::workspace(int64_t batch, int64_t seq_len, bool training) {
  std::unique_ptr<Workspace>& slot = training ? training_workspace_ : evaluation_workspace_;
  if (!slot || slot->batch != batch || slot->seq != seq_len) {
    slot.reset();  // free the old plan before allocating the new one
    slot = std::make_unique<Workspace>(config_, table_, device_, dtype_, param_dtype_, batch, seq_len, training);
  }
  return *slot;
}

LossSum Model::evaluate(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len,
                        const Pattern& pattern) {
  return run(inputs, targets, batch, seq_len, pattern, false, 0.0, {});
}

LossSum Model::forward_backward(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len,
                                const Pattern& pattern, double weight, const GradientsReady& ready) {
  return run(inputs, targets, batch, seq_len, pattern, true, weight, ready);
}

LossSum Model::run(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len,
                   const Pattern& pattern, bool training, double weight, const GradientsReady& ready) {
  Workspace& ws = stage(inputs, targets, batch, seq_len, training);
  step(ws, pattern, training, weight, ready);
  return staged_loss(ws);
}

void Model::stage_tokens(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len) {
  stage(inputs, targets, batch, seq_len, true);
}

void Model::staged_forward_backward(const Pattern& pattern, double weight) {
  check_internal(training_workspace_ && training_workspace_->inputs, "staged_forward_backward: nothing staged");
  step(*training_workspace_, pattern, true, weight, {});
}

LossSum Model::staged_loss() const {
  check_internal(training_workspace_ && training_workspace_->inputs, "staged_loss: nothing staged");
  return staged_loss(*training_workspace_);
}

Model::Workspace& Model::stage(const int32_t* inputs, const int32_t* targets, int64_t batch, int64_t seq_len,
                               bool training) {
  Workspace& ws = workspace(batch, seq_len, training);
  const int64_t rows = batch * seq_len;
  ws.labels = std::count_if(targets, targets + rows, [](int32_t t) { return t >= 0; });
  ws.inputs = inputs;
  ws.targets = targets;
  if (device_ != Device::cpu) {
    copy_tensor(ws.tokens.rows_slice(0, 1), Tensor{const_cast<int32_t*>(inputs), 1, rows, rows, DType::i32, Device::cpu});
    copy_tensor(ws.tokens.rows_slice(1, 1), Tensor{const_cast<int32_t*>(targets), 1, rows, rows, DType::i32, Device::cpu});
    ws.inputs = ws.tokens.rows_slice(0, 1).ptr<int32_t>();
    ws.targets = ws.tokens.rows_slice(1, 1).ptr<int32_t>();
  }
  return ws;
}

LossSum Model::staged_loss(const Workspace& ws) const {
  double sum = 0;
  copy_tensor(Tensor{&sum, 1, 1, 1, DType::f64, Device::cpu}, ws.head.loss_sum);
  return {sum, ws.labels};
}

void Model::step(Workspace& ws, const Pattern& pattern, bool training, double weight, const GradientsReady& ready) {
  pattern.check_fits(config_.n_layers, config_.n_heads);
  const Dims dims = Dims::of(config_, table_, ws.batch, ws.seq, tp_);
  const int64_t layers = config_.n_layers;
  const Tensor params = compute_weights(), grads = gradients();
  std::vector<std::vector<KeySet>> head_keys(layers);
  const int64_t first_head = table_.tp_rank() * dims.heads;  // this rank's heads under tensor parallelism
  for (int64_t i = 0; i < layers; ++i) {
    const std::vector<KeySet> keys = pattern.head_keys(i, config_.n_heads);
    head_keys[i].assign(keys.begin() + first_head, keys.begin() + first_head + dims.heads);
  }

  // Residual buffer before block b (b = 0 … 2L): all kept in training, alternating in evaluation.
  auto residual = [&](int64_t b) -> Tensor& { return ws.residual[training ? b : b % 2]; };
  embedding_forward(residual(0), ws.inputs, view(params, table_.embed()), dims.vocab_begin);
  tensor_parallel_sum(dims, residual(0));
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t s = training ? i : 0;
    temporal_mixing_forward(dims, head_keys[i], temporal_weights(params, i), residual(2 * i), residual(2 * i + 1),
                            ws.temporal[s]);
    channel_mixing_forward(dims, channel_weights(params, i), residual(2 * i + 1), residual(2 * i + 2),
                           ws.channel[s]);
  }

  const double grad_scale = training && ws.labels > 0 ? weight / static_cast<double>(ws.labels) : 0.0;
  output_head(dims, view(params, table_.final_norm()), view(params, table_.lm_head()), residual(2 * layers),
              ws.targets, ws.head, grad_scale, view(grads, table_.final_norm()), view(grads, table_.lm_head()),
              ws.d_residual);
  if (grad_scale == 0.0) return;

  // The table is laid out embedding, layers 0 … L−1, final norm (, head): the backward finishes gradients
  // from the end of the flat buffer towards its start.
  const auto& entries = table_.entries();
  if (ready) ready(entries[table_.final_norm()].offset);
  for (int64_t i = layers - 1; i >= 0; --i) {
    channel_mixing_backward(dims, channel_weights(params, i), channel_weights(grads, i), residual(2 * i + 1),
                            ws.channel[i], ws.d_residual, ws.d_residual, ws.channel_scratch);
    temporal_mixing_backward(dims, head_keys[i], temporal_weights(params, i), temporal_weights(grads, i),
                             residual(2 * i), ws.temporal[i], ws.d_residual, ws.d_residual, ws.temporal_scratch);
    if (ready) ready(entries[table_.layer(i).attn_norm].offset);
  }
  embedding_backward(view(grads, table_.embed()), ws.inputs, ws.d_residual, dims.vocab_begin);
  if (ready) ready(0);
}

}  // namespace ratplus
