// Attention of one query per sequence over a compact decoding cache on the GPU (cache_attention.cu): the
// KeyLayout::cache path of cuda::attention_forward, whose arguments attention_forward has validated.
#pragma once

#include "kernels/attention.h"

namespace ratplus::cuda {

void cache_attention_forward(const AttentionArgs& a);

}  // namespace ratplus::cuda
