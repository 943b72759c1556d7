// The embedding entry points: checks, then the CPU or GPU gather and scatter-add.
#include "kernels/embedding.h"

#include "kernels/backend.h"

namespace ratplus {

void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table, int64_t vocab_begin) {
  const OpCheck check("embedding_forward");
  check.device(out.device, {&table});
  check.dtype(table, "the table", out.dtype);
  check.that(out.cols == table.cols, fmt::format("out has {} columns, the table {}", out.cols, table.cols));
  check.that(tokens != nullptr || out.rows == 0, "no tokens");
  check.apart(out, "out", table, "the table");
  RATPLUS_DISPATCH(out, embedding_forward(out, tokens, table, vocab_begin));
}

void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout, int64_t vocab_begin) {
  const OpCheck check("embedding_backward");
  check.device(dout.device, {&dtable});
  check.activations(dout, "dout");
  check.statistics(dtable, "dtable", dout);
  check.that(dout.cols == dtable.cols, fmt::format("dout has {} columns, dtable {}", dout.cols, dtable.cols));
  check.that(tokens != nullptr || dout.rows == 0, "no tokens");
  check.apart(dtable, "dtable", dout, "dout");
  RATPLUS_DISPATCH(dout, embedding_backward(dtable, tokens, dout, vocab_begin));
}

}  // namespace ratplus
