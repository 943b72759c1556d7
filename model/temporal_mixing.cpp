// The RAT+ temporal-mixing block (SPEC §2 steps 1–7), forward and backward, and the attention-only
// baseline when dims.recurrence is false (keys and values are then the raw k, v slices).
#include <algorithm>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/recurrence.h"
#include "kernels/rope.h"
#include "model/blocks.h"

namespace ratplus {

namespace {

// The five (four) row blocks of the input projection, as column slices of its output.
struct Projections {
  Tensor o, q, k, v, g;
};

Projections split(const Tensor& z, int64_t d, bool recurrence) {
  return {z.cols_slice(0, d), z.cols_slice(d, d), z.cols_slice(2 * d, d), z.cols_slice(3 * d, d),
          recurrence ? z.cols_slice(4 * d, d) : Tensor{}};
}

// Training and eval attend over the whole sequence: q_len = k_len = T, queries from position 0.
AttentionArgs attention_args(const Dims& dims, const std::vector<KeySet>& head_keys, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out, const Tensor& lse) {
  return {.q = q, .batch = dims.batch, .q_len = dims.seq, .k = k, .v = v, .k_len = dims.seq, .head_keys = head_keys,
          .out = out, .lse = lse};
}

}  // namespace

void temporal_mixing_forward(const Dims& dims, const std::vector<KeySet>& head_keys, const TemporalMixingWeights& w,
                             const Tensor& x, Tensor y, TemporalMixingState& s, const RecurrenceState& initial,
                             const RecurrenceState& final_state, std::span<const BlockTopK> head_blocks) {
  rmsnorm_forward(s.h, s.rstd, x, w.norm, dims.eps);
  matmul(s.z, s.h, false, w.in_proj, true);
  const Projections p = split(s.z, dims.attn_width(), dims.recurrence);
  Tensor keys = p.k, values = p.v;
  if (dims.recurrence) {
    recurrence_forward(s.k_rec, s.v_rec, p.k, p.v, p.g, dims.batch, initial, final_state);
    keys = s.k_rec;
    values = s.v_rec;
  }
  rope(s.q_rot, p.q, dims.seq, dims.heads, dims.rope_base, 0, false);
  rope(s.k_rot, keys, dims.seq, dims.heads, dims.rope_base, 0, false);
  AttentionArgs args = attention_args(dims, head_keys, s.q_rot, s.k_rot, values, s.att, s.lse);
  args.head_blocks = head_blocks;
  attention_forward(args);
  sigmoid_gate_forward(s.gated, s.att, p.o);
  row_parallel_output(dims, y, x, s.gated, w.out_proj);
}

void temporal_mixing_backward(const Dims& dims, const std::vector<KeySet>& head_keys,
                              const TemporalMixingWeights& w, const TemporalMixingWeights& grad, const Tensor& x,
                              const TemporalMixingState& s, const Tensor& dy, Tensor dx,
                              TemporalMixingScratch& scratch) {
  const Projections p = split(s.z, dims.attn_width(), dims.recurrence);
  const Projections dp = split(scratch.dz, dims.attn_width(), dims.recurrence);
  // y = x + gated · W_outᵀ
  matmul(scratch.d_gated, dy, false, w.out_proj, false);
  matmul(grad.out_proj, dy, true, s.gated, false, 1.0, 1.0);
  // gated = att ⊙ sigmoid(o)
  sigmoid_gate_backward(scratch.d_att, dp.o, scratch.d_gated, s.att, p.o);
  // attention over rotated queries/keys; without recurrence its key/value gradients land in dz directly
  const Tensor values = dims.recurrence ? s.v_rec : p.v;
  Tensor dvalues = dims.recurrence ? scratch.dv_rec : dp.v;
  attention_backward(attention_args(dims, head_keys, s.q_rot, s.k_rot, values, s.att, s.lse),
                     {.dout = scratch.d_att, .dq = scratch.dq_rot, .dk = scratch.dk_rot, .dv = dvalues,
                      .workspace = scratch.attention_workspace});
  rope(dp.q, scratch.dq_rot, dims.seq, dims.heads, dims.rope_base, 0, true);
  if (dims.recurrence) {
    rope(scratch.dk_rec, scratch.dk_rot, dims.seq, dims.heads, dims.rope_base, 0, true);
    recurrence_backward(dp.k, dp.v, dp.g, scratch.dk_rec, scratch.dv_rec, s.k_rec, s.v_rec, p.k, p.v, p.g,
                        dims.batch);
  } else {
    rope(dp.k, scratch.dk_rot, dims.seq, dims.heads, dims.rope_base, 0, true);
  }
  // z = h · W_inᵀ
  matmul(scratch.dh, scratch.dz, false, w.in_proj, false);
  tensor_parallel_sum(dims, scratch.dh);
  matmul(grad.in_proj, scratch.dz, true, s.h, false, 1.0, 1.0);
  // h = RMSNorm(x); the residual carries dy through
  if (dx.data != dy.data) copy_tensor(dx, dy);
  rmsnorm_backward(dx, grad.norm, scratch.dh, x, w.norm, s.rstd, true);
}

}  // namespace ratplus
