// Evaluation under patterns: windows are read once per micro-batch and each pattern's loss summed over
// all non-ignored labels, so the result is the mean over labels, not a mean of batch means.
#include "inference/evaluate.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace ratplus {

std::vector<EvalResult> evaluate_patterns(Model& model, const TokenStream& data, const EvalOptions& options,
                                          const std::vector<Pattern>& patterns) {
  const ModelConfig& c = model.config();
  for (const Pattern& p : patterns) p.check_fits(c.n_layers, c.n_heads);
  require_input(options.seq_len >= 1, fmt::format("--seq-len must be at least 1, got {}", options.seq_len));
  require_input(options.windows >= 1, fmt::format("--batches must be at least 1, got {}", options.windows));
  const int64_t available = data.num_windows(options.seq_len);
  require_input(options.windows <= available,
                fmt::format("the data holds {} windows of {} tokens ({} tokens in {} file(s)), {} were asked for",
                            available, options.seq_len, data.size(), data.shards().size(), options.windows));

  std::vector<LossSum> sums(patterns.size());
  const int64_t t = options.seq_len;
  const int64_t mb = std::max<int64_t>(1, std::min(options.micro_batch, options.windows));
  std::vector<int32_t> inputs(mb * t), targets(mb * t);
  for (int64_t first = 0; first < options.windows; first += mb) {
    const int64_t n = std::min(mb, options.windows - first);
    for (int64_t i = 0; i < n; ++i)
      data.window(first + i, t, options.eos_id, inputs.data() + i * t, targets.data() + i * t);
    for (size_t p = 0; p < patterns.size(); ++p) {
      const LossSum l = model.evaluate(inputs.data(), targets.data(), n, t, patterns[p]);
      sums[p].sum += l.sum;
      sums[p].count += l.count;
    }
  }
  std::vector<EvalResult> results;
  for (size_t p = 0; p < patterns.size(); ++p) results.push_back({patterns[p].text(), sums[p].mean(), sums[p].count});
  return results;
}

std::string eval_results_json(const std::vector<EvalResult>& results) {
  nlohmann::json list = nlohmann::json::array();
  for (const EvalResult& r : results)
    list.push_back({{"pattern", r.pattern}, {"loss", r.loss}, {"ppl", std::exp(r.loss)}, {"tokens", r.tokens}});
  return nlohmann::json{{"results", list}}.dump(2) + "\n";
}

}  // namespace ratplus
