// Attention of one query per sequence over a compact decoding cache on the GPU (cache_attention.cu): the
// KeyLayout::cache path of cuda::attention_forward, whose arguments attention_forward has validated.
#pragma once

#include "kernels/attention.h"

namespace ratplus::cuda {

// positions_head_stride: 0, or the distance between the key positions of consecutive heads when each head
// has its own (the slots a top-k head selected: topk_attention.cu).
void cache_attention_forward(const AttentionArgs& a, int64_t positions_head_stride = 0);

}  // namespace ratplus::cuda
