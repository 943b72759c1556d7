// Token embedding lookup and its gradient (scatter-add into the table rows). The table may hold only the
// rows [vocab_begin, vocab_begin + table.rows) of the vocabulary (vocabulary parallelism): tokens outside
// them read zeros and add nothing, so a sum over the ranks that split the vocabulary completes the lookup.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

// out[r] = table[tokens[r] − vocab_begin], or zeros when the table does not hold tokens[r]; tokens has
// out.rows entries on the same device as the tensors.
void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table, int64_t vocab_begin = 0);
// dtable[tokens[r] − vocab_begin] += dout[r] for the tokens the table holds.
void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout, int64_t vocab_begin = 0);

}  // namespace ratplus
