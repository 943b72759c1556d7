// Token embedding lookup and its gradient (scatter-add into the table rows).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

// out[r] = table[tokens[r]]; tokens has out.rows entries on the same device as the tensors.
void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table);
// dtable[tokens[r]] += dout[r].
void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout);

}  // namespace ratplus
