// Few-row matrix products (matvec.cu): the products of a decoding step, where a batch of at most
// kMaxFewRows rows meets a linear layer's bf16 weights, run on a kernel that streams the weights at close to
// the copy rate instead of through cuBLASLt.
#pragma once

#include "core/tensor.h"

namespace ratplus::cuda {

inline constexpr int64_t kMaxFewRows = 8;

// C = alpha · A · Bᵀ + beta · C (the arguments of cuda::matmul, already checked) for bf16 A of 1 to
// kMaxFewRows rows, bf16 B and bf16 or f32 C, when A and B have 16-byte-aligned rows (k a multiple of 8);
// returns false, having done nothing, for any other call.
bool few_rows_matmul(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha,
                     double beta);

}  // namespace ratplus::cuda
