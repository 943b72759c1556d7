// Rotary position embedding, rotate-half convention over the full head width (SPEC §2 step 5): for
// channel pairs (c, c + dh/2) of each head, angle = pos · base^(−2c/dh).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ratplus {

// x, out: [batch · seq_len, n_heads · dh]; row r has position pos0 + r mod seq_len. out may alias x.
// inverse = rotate by −angle, which is also the backward (the rotation is orthogonal).
void rope(Tensor out, const Tensor& x, int64_t seq_len, int64_t n_heads, double base, int64_t pos0, bool inverse);

}  // namespace ratplus
