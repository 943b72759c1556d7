// The RoPE entry point: checks, then the CPU or GPU rotation.
#include "kernels/rope.h"

#include "kernels/backend.h"

namespace ratplus {

void rope(Tensor out, const Tensor& x, int64_t seq_len, int64_t n_heads, double base, int64_t pos0, bool inverse) {
  const OpCheck check("rope");
  check.device(x.device, {&out});
  check.activations(x, "x");
  check.dtype(out, "out", x.dtype);
  check.shape(out, "out", x.rows, x.cols);
  check.that(n_heads > 0 && x.cols % n_heads == 0 && x.cols / n_heads % 2 == 0,
             fmt::format("{} columns are not {} heads of an even width", x.cols, n_heads));
  check.that(seq_len > 0 && x.rows % seq_len == 0,
             fmt::format("{} rows are not sequences of {} positions", x.rows, seq_len));
  check.that(pos0 >= 0, "a negative first position");
  check.apart_or_same(out, "out", x, "x");
  RATPLUS_DISPATCH(x, rope(out, x, seq_len, n_heads, base, pos0, inverse));
}

}  // namespace ratplus
