// The gated linear recurrence of RAT+ (SPEC §2 step 4), per (sequence, channel), keys and values sharing
// the gate: a = sigmoid(g), k̃_t = a_t k̃_{t−1} + (1 − a_t) k_t, ṽ_t likewise, k̃_{−1} = ṽ_{−1} = 0 unless an
// initial state is given. Tensors are [batch · T, channels] with row b·T + t; k, v, g may be column slices
// of one projection. A sequence may be run in parts: the final state of one part is the initial state of
// the next, and the outputs equal those of one run over the whole.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

// k̃ and ṽ at one position of each sequence: [batch, channels] each, in the statistics type (f32; f64 for
// f64 activations), on the device of the activations. Empty tensors = no state.
struct RecurrenceState {
  Tensor k, v;
  bool empty() const { return k.empty() && v.empty(); }
};

// initial: the state before row 0 of each sequence (empty = zero); final_state: receives the state at
// each sequence's last row (empty = not written).
void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                        int64_t batch, const RecurrenceState& initial = {}, const RecurrenceState& final_state = {});

// Reverse scan with the adjoint λ_t = ∂L/∂h_t + a_{t+1} λ_{t+1}:
// ∂L/∂x_t = (1 − a_t) λ_t, ∂L/∂g_t = a_t (1 − a_t) Σ_{k,v} λ_t (h_{t−1} − x_t). Overwrites dk, dv, dg.
// The forward must have started from the zero state.
void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v,
                         const Tensor& g, int64_t batch);

}  // namespace ratplus
