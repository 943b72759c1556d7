// Top-k block attention on the GPU (SPEC §6): the forward of a sequence-layout call (whole sequences, or a
// chunk with q_pos0 > 0) some of whose heads have an active BlockTopK, the other heads attending to their
// fixed key sets in the same launch; or one decoding step over a top-k cache (KeyLayout::cache, every head
// under one BlockTopK, the cache's block summaries). Top-k has no backward; the entry point
// (kernels/attention.h) refuses it before this is reached.
#pragma once

#include "kernels/attention.h"

namespace ratplus::cuda {

// Writes out and the f32 lse; f32 or bf16 activations, head width ≤ 128.
void topk_attention_forward(const AttentionArgs& a);

}  // namespace ratplus::cuda
