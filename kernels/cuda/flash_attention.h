// The tensor-core attention path: bf16 activations, head width 64 or 128 (forwards in hopper_forward.cu
// and flash_forward.cu, backward in flash_backward.cu; tile plans in flash_tiles.h, PTX helpers in
// flash_common.cuh and wgmma.cuh). Same arguments and results as cuda::attention_forward /
// attention_backward, which validate them first (kernels/attention.h); each returns false, having done
// nothing, when it does not apply (another dtype or width, more than kMaxHeads heads, rows not 16-byte
// aligned, T above 2^22, or a chunk: q_pos0 > 0 or k_len ≠ q_len), and the caller then runs the general
// kernel.
#pragma once

#include "kernels/attention.h"

namespace ratplus::cuda {

// The wgmma forward where hopper_attention_available() and no head's key set is dilated, else the
// mma.sync one.
bool flash_attention_forward(const AttentionArgs& a);

// The two forwards alone, for the tests and benchmarks that compare them. The wgmma forward also returns
// false where it is unavailable.
bool mma_attention_forward(const AttentionArgs& a);
bool hopper_attention_forward(const AttentionArgs& a);

// Whether this build holds the wgmma kernels (an sm_90a target) and the current GPU runs them (compute
// capability 9.0).
bool hopper_attention_available();

// Overwrites dq, dk, dv.
bool flash_attention_backward(const AttentionArgs& a, const AttentionGrads& g);

}  // namespace ratplus::cuda
