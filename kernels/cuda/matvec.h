// Matrix–vector products (matvec.cu): the products of a decoding step at batch 1, one bf16 row against a
// linear layer's bf16 weights, on a kernel that streams the weights at close to the copy rate; cuBLASLt's
// kernels for one row read them slower, and matched or beat this design from 4 rows on.
#pragma once

#include "core/tensor.h"

namespace ratplus::cuda {

// c = alpha · a · Bᵀ + beta · c (the arguments of cuda::matmul, already checked) for a bf16 a of one row, bf16
// B and bf16 or f32 c, when a and B have 16-byte-aligned rows (k a multiple of 8); returns false, having done
// nothing, for any other call.
bool matvec(Tensor c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha, double beta);

// linear_add and linear_gelu (kernels/matmul.h; arguments checked) for one bf16 row against bf16 weights with
// bf16 results, in one kernel each; false, having done nothing, for any other call.
bool matvec_add(Tensor y, const Tensor& residual, const Tensor& a, const Tensor& w);
bool matvec_gelu(Tensor pre, Tensor act, const Tensor& a, const Tensor& w);

}  // namespace ratplus::cuda
