// The tensor-core attention path (kernels/cuda/flash_attention.cu): bf16 activations, head width 64 or 128.
// Same arguments and results as cuda::attention_forward / attention_backward (kernels/attention.h); each
// returns false, having done nothing, when it does not apply (another dtype or width, more than 128 heads,
// rows not 16-byte aligned, T above 2^22), and the caller then runs the general kernel.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "kernels/attention.h"

namespace ratplus::cuda {

bool flash_attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch,
                             std::span<const KeySet> head_keys);

// Overwrites dq, dk, dv.
bool flash_attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse, int64_t batch,
                              std::span<const KeySet> head_keys);

}  // namespace ratplus::cuda
