// The cross-entropy entry points: checks, then the CPU or GPU passes; the one-slice form runs both steps.
#include "kernels/cross_entropy.h"

#include "core/buffer.h"
#include "kernels/backend.h"

namespace ratplus {

void cross_entropy_partials(Tensor partials, const Tensor& logits, const int32_t* targets, int64_t vocab_begin) {
  const OpCheck check("cross_entropy_partials");
  check.device(logits.device, {&partials});
  check.activations(logits, "logits");
  check.statistics(partials, "partials", logits);
  check.shape(partials, "partials", 2, logits.rows);
  check.that(logits.cols > 0, "an empty vocabulary slice");
  check.that(targets != nullptr || logits.rows == 0, "no targets");
  check.apart(partials, "partials", logits, "logits");
  RATPLUS_DISPATCH(logits, cross_entropy_partials(partials, logits, targets, vocab_begin));
}

void cross_entropy_finish(Tensor row_loss, Tensor logits, const int32_t* targets, int64_t vocab_begin,
                          const Tensor& partials, double grad_scale) {
  const OpCheck check("cross_entropy_finish");
  check.device(logits.device, {&row_loss, &partials});
  check.activations(logits, "logits");
  check.statistics(row_loss, "row_loss", logits);
  check.statistics(partials, "partials", logits);
  check.shape(row_loss, "row_loss", 1, logits.rows);
  check.that(partials.rows >= 2 && partials.rows % 2 == 0 && partials.cols == logits.rows,
             fmt::format("partials are {}x{}, expected 2·slices x {}", partials.rows, partials.cols, logits.rows));
  check.that(targets != nullptr || logits.rows == 0, "no targets");
  check.apart(row_loss, "row_loss", logits, "logits");
  check.apart(row_loss, "row_loss", partials, "partials");
  check.apart(logits, "logits", partials, "partials");
  RATPLUS_DISPATCH(logits, cross_entropy_finish(row_loss, logits, targets, vocab_begin, partials, grad_scale));
}

void accumulate_loss(Tensor total, const Tensor& row_loss) {
  const OpCheck check("accumulate_loss");
  check.device(row_loss.device, {&total});
  check.dtype(total, "total", DType::f64);
  check.shape(total, "total", 1, 1);
  check.that(row_loss.rows == 1, "row_loss is not one row");
  check.that(row_loss.dtype == DType::f32 || (row_loss.dtype == DType::f64 && row_loss.device == Device::cpu),
             fmt::format("row_loss is {} on {}", dtype_name(row_loss.dtype), device_name(row_loss.device)));
  check.apart(total, "total", row_loss, "row_loss");
  if (row_loss.cols == 0) return;
  RATPLUS_DISPATCH(row_loss, accumulate_loss(total, row_loss));
}

void cross_entropy(Tensor row_loss, Tensor logits, const int32_t* targets, double grad_scale) {
  const DType stat = OpCheck::statistics_type(logits);
  Buffer scratch(2 * logits.rows * dtype_size(stat), logits.device);
  const Tensor partials{scratch.data(), 2, logits.rows, logits.rows, stat, logits.device};
  cross_entropy_partials(partials, logits, targets, 0);
  cross_entropy_finish(row_loss, logits, targets, 0, partials, grad_scale);
}

}  // namespace ratplus
