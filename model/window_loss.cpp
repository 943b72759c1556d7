// Loss over windows in micro-batches (see window_loss.h).
#include "model/window_loss.h"

#include <algorithm>
#include <vector>

namespace ratplus {

LossSum window_loss(Model& model, const Pattern& pattern, const WindowSource& source, int64_t windows,
                    int64_t seq_len, int64_t micro_batch) {
  const int64_t mb = std::max<int64_t>(1, std::min(micro_batch, windows));
  std::vector<int32_t> inputs(mb * seq_len), targets(mb * seq_len);
  LossSum total;
  for (int64_t first = 0; first < windows; first += mb) {
    const int64_t n = std::min(mb, windows - first);
    for (int64_t i = 0; i < n; ++i) source(first + i, inputs.data() + i * seq_len, targets.data() + i * seq_len);
    const LossSum l = model.forward({inputs.data(), n, seq_len, pattern}, LossOutput{targets.data()});
    total.sum += l.sum;
    total.count += l.count;
  }
  return total;
}

}  // namespace ratplus
