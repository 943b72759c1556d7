// Softmax cross-entropy fused with its gradient: the logits are overwritten in place by the gradient, so
// probabilities are never stored separately. The vocabulary may be split by columns across ranks
// (vocabulary parallelism); the loss then takes two steps around an exchange of two numbers per row:
//   1. cross_entropy_partials: each slice's log-sum-exp and (where the slice holds it) the target's logit;
//   2. cross_entropy_finish: with the partials of every slice, the row losses and the gradient.
// Without vocabulary parallelism there is one slice and nothing to exchange.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

// logits: [rows, Vs], columns [vocab_begin, vocab_begin + Vs) of the full logits; targets: rows entries (host
// or device, like the tensors; full-vocabulary ids, < 0 = ignored). partials: [2, rows] in the statistics
// type (f32, or f64 for f64 logits): row 0 = log Σ_c exp(logits[r, c]); row 1 = the target's logit when
// vocab_begin ≤ target < vocab_begin + Vs, else 0.
void cross_entropy_partials(Tensor partials, const Tensor& logits, const int32_t* targets, int64_t vocab_begin);

// partials: [2·S, rows], the partials of all S slices of the vocabulary (rows 2s and 2s + 1 from slice s).
// With lse = log Σ_s exp(partials[2s]): row_loss[0, r] = lse − Σ_s partials[2s + 1] (0 for ignored rows).
// With grad_scale != 0, logits[r] is replaced by grad_scale · (exp(logits[r] − lse) − onehot(target)) on this
// slice's columns (zero for ignored rows); with grad_scale == 0 the logits are left as they are.
void cross_entropy_finish(Tensor row_loss, Tensor logits, const int32_t* targets, int64_t vocab_begin,
                          const Tensor& partials, double grad_scale);

// total[0, 0] += Σ_r row_loss[0, r], summed in double on row_loss's device (total: [1, 1] f64), so a
// micro-batch's loss is read from the device once rather than once per chunk. On the CPU the rows are
// added one by one in order.
void accumulate_loss(Tensor total, const Tensor& row_loss);

// The whole vocabulary in one slice: both steps (the partials in a temporary buffer).
void cross_entropy(Tensor row_loss, Tensor logits, const int32_t* targets, double grad_scale);

}  // namespace ratplus
