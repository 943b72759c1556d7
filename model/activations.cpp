// The activation plan of a batch shape (see activations.h).
#include "model/activations.h"

#include "kernels/attention.h"

#include <algorithm>
#include <fmt/format.h>
#include <string>
#include <utility>

namespace ratplus {

int64_t logits_chunk_rows(int64_t rows, int64_t vocab) {
  return std::clamp<int64_t>((int64_t{8} << 20) / vocab, 1, rows);
}

Activations::Activations(const ModelConfig& c, const ParameterTable& table, std::optional<Device> device,
                         DType dtype, DType stat_dtype, int64_t batch_, int64_t seq_, bool training_)
    : batch(batch_), seq(seq_), training(training_) {
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
    if (device != Device::cpu)  // planning (no device) counts it too
      plan(s.attention_workspace, "grad/attn/workspace", 1, attention_backward_workspace(batch, seq, seq, h, a),
           DType::f32);
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

}  // namespace ratplus
