// The CUDA implementations behind the op entry points (kernels/*.h, whose comments define what each
// computes), called when the tensors live on the GPU; defined only with RATPLUS_HAVE_CUDA. They take
// checked arguments (attention excepted, which still checks its own). Activations are f32 or bf16;
// statistics (rstd, lse, row losses), weight gradients, recurrence states and optimizer state are f32.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/cache_append.h"
#include "kernels/optimizer.h"
#include "kernels/recurrence.h"

namespace ratplus::cuda {

void matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta);

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& w, double eps);
void rmsnorm_backward(Tensor dx, Tensor dw, const Tensor& dout, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      bool accumulate_dx);

void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table, int64_t vocab_begin);
void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout, int64_t vocab_begin);

void sigmoid_gate_forward(Tensor y, const Tensor& x, const Tensor& gate);
void sigmoid_gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate);
void gelu_forward(Tensor y, const Tensor& x);
void gelu_backward(Tensor dx, const Tensor& dy, const Tensor& x);
void add_inplace(Tensor y, const Tensor& x);
void convert(Tensor dst, const Tensor& src);

void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g, int64_t batch,
                        const RecurrenceState& initial, const RecurrenceState& final_state);
void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                         int64_t batch);

void rope(Tensor out, const Tensor& x, int64_t seq_len, int64_t n_heads, double base, int64_t pos0, bool inverse);

void attention_forward(const AttentionArgs& a);
void attention_backward(const AttentionArgs& a, const AttentionGrads& g);

void cache_append(const CacheAppendArgs& a);
void summarize_prompt_blocks(const CacheView& c, int64_t b, const Tensor& keys, int64_t n);
void quantize_to_int8(Tensor q, Tensor scales, const Tensor& x, int64_t head_dim);

void cross_entropy_partials(Tensor partials, const Tensor& logits, const int32_t* targets, int64_t vocab_begin);
void cross_entropy_finish(Tensor row_loss, Tensor logits, const int32_t* targets, int64_t vocab_begin,
                          const Tensor& partials, double grad_scale);
void accumulate_loss(Tensor total, const Tensor& row_loss);

void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, const AdamWStep& step, Tensor params_copy);
double sum_of_squares(const Tensor& x);

}  // namespace ratplus::cuda
