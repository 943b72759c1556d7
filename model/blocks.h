// The blocks of the model, each an explicit forward and backward over tensors (no autograd):
//   temporal mixing — RMSNorm, fused o/q/k/v/g projection, gated recurrence, RoPE, attention under a
//                     pattern, sigmoid output gate, output projection, residual add (SPEC §2 steps 1–7);
//   channel mixing  — RMSNorm, fc1, exact GELU, fc2, residual add;
//   output head     — final RMSNorm, logits against the (tied) embedding, cross-entropy, processed in
//                     row chunks so the logits of a whole batch never exist at once.
// Each block's forward saves what its backward needs in a state struct; backward maps the gradient of
// the block output to the gradient of its input (which may be the same tensor: residual in place) and adds
// the weight gradients.
//
// Under tensor parallelism (Dims::tp) each rank runs its own heads and FFN columns: the inputs of a block are
// the same on every rank, the row-parallel output projections give partial sums that are summed over the
// ranks (rank 0 adding the residual), and so are the input gradients of the column-parallel projections.
#pragma once

#include <cstdint>
#include <vector>

#include "core/model_config.h"
#include "core/buffer.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/recurrence.h"
#include "model/parameters.h"
#include "parallel/communicator.h"

namespace ratplus {

struct Dims {
  int64_t batch, seq, d, heads, head_dim, ffn;  // heads and ffn: this rank's share
  bool recurrence;
  double eps, rope_base;
  int64_t vocab_begin;  // this rank's first vocabulary row
  Communicator* tp;     // the tensor-parallel group; nullptr without tensor parallelism
  int64_t rows() const { return batch * seq; }
  int64_t attn_width() const { return heads * head_dim; }  // columns of each of o, q, k, v, g on this rank
  static Dims of(const ModelConfig& c, const ParameterTable& t, int64_t batch, int64_t seq, Communicator* tp) {
    return {batch,        seq,         c.d_model,       t.heads(), c.head_dim(), t.ffn(), c.recurrence,
            c.norm_eps,   c.rope_base, t.vocab_begin(), tp};
  }
};

// Sums a tensor of partial values over the tensor-parallel ranks (nothing without tensor parallelism).
void tensor_parallel_sum(const Dims& dims, Tensor t);
// y = x + a · wᵀ where w is row-parallel (this rank holds the columns of w matching the columns of a): the
// ranks' partial products are summed, rank 0 adding x.
void row_parallel_output(const Dims& dims, Tensor y, const Tensor& x, const Tensor& a, const Tensor& w);

struct TemporalMixingWeights {
  Tensor norm, in_proj, out_proj;
};

// Saved by the forward pass ([rows, ·] each; lse is [rows, heads]; rstd is [1, rows]).
struct TemporalMixingState {
  Tensor h, rstd, z, k_rec, v_rec, q_rot, k_rot, att, lse, gated;
};

// Backward work space.
struct TemporalMixingScratch {
  Tensor d_gated, d_att, dq_rot, dk_rot, dk_rec, dv_rec, dz, dh;
  Tensor attention_workspace;  // f32, for the GPU attention backward (empty on the CPU)
};

struct ChannelMixingWeights {
  Tensor norm, fc1, fc2;
};

struct ChannelMixingState {
  Tensor h, rstd, pre, act;
};

struct ChannelMixingScratch {
  Tensor d_act, dh;
};

// With recurrence, the scan starts from `initial` (empty: zero) and writes its last state into `final_state`
// (empty: not written); [batch, this rank's attention width] each. head_blocks: empty, or each head's top-k
// block term (inference only: such a forward has no backward).
void temporal_mixing_forward(const Dims& dims, const std::vector<KeySet>& head_keys, const TemporalMixingWeights& w,
                             const Tensor& x, Tensor y, TemporalMixingState& s, const RecurrenceState& initial = {},
                             const RecurrenceState& final_state = {}, std::span<const BlockTopK> head_blocks = {});
void temporal_mixing_backward(const Dims& dims, const std::vector<KeySet>& head_keys,
                              const TemporalMixingWeights& w, const TemporalMixingWeights& grad, const Tensor& x,
                              const TemporalMixingState& s, const Tensor& dy, Tensor dx, TemporalMixingScratch& scratch);

void channel_mixing_forward(const Dims& dims, const ChannelMixingWeights& w, const Tensor& x, Tensor y,
                            ChannelMixingState& s);
void channel_mixing_backward(const Dims& dims, const ChannelMixingWeights& w, const ChannelMixingWeights& grad,
                             const Tensor& x, const ChannelMixingState& s, const Tensor& dy, Tensor dx,
                             ChannelMixingScratch& scratch);

struct LossSum {
  double sum = 0;     // Σ of per-label cross-entropy
  int64_t count = 0;  // labels that were not ignored
  double mean() const { return count ? sum / count : 0.0; }
};

struct OutputHeadState {
  Tensor h, rstd;   // final norm output [rows, d] and its rstd [1, rows]
  Tensor logits;    // [chunk rows, V / tp] work space
  Tensor row_loss;  // [1, chunk rows]
  Tensor partials;  // [2 · tp, chunk rows]: cross-entropy partials of every vocabulary slice
  Tensor dh;        // [rows, d] gradient of the final norm output (training only)
  Tensor loss_sum;  // [1, 1] f64: Σ of the row losses, accumulated on the device
};

// Loss of the last hidden state x against targets (< 0 = ignored, on the tensors' device): s.loss_sum
// becomes the sum over the labels, left on the device. With grad_scale != 0, also adds grad_scale ·
// ∂(Σ loss)/∂θ to the norm and head gradients and writes grad_scale · ∂(Σ loss)/∂x into dx.
void output_head(const Dims& dims, const Tensor& norm_w, const Tensor& head_w, const Tensor& x, const int32_t* targets,
                 OutputHeadState& s, double grad_scale, Tensor dnorm_w, Tensor dhead_w, Tensor dx);

}  // namespace ratplus
