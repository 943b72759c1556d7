// Evaluation under patterns: checks the request against model and data, then each pattern's loss over
// the first N windows (model/window_loss.h).
#include "inference/evaluate.h"

#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/window_loss.h"

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

  const WindowSource source = [&](int64_t k, int32_t* inputs, int32_t* targets) {
    data.window(k, options.seq_len, options.eos_id, inputs, targets);
  };
  std::vector<EvalResult> results;
  for (const Pattern& p : patterns) {
    const LossSum l = window_loss(model, p, source, options.windows, options.seq_len, options.micro_batch);
    results.push_back({p.text(), l.mean(), l.count});
  }
  return results;
}

std::string eval_results_json(const std::vector<EvalResult>& results) {
  nlohmann::json list = nlohmann::json::array();
  for (const EvalResult& r : results)
    list.push_back({{"pattern", r.pattern}, {"loss", r.loss}, {"ppl", std::exp(r.loss)}, {"tokens", r.tokens}});
  return nlohmann::json{{"results", list}}.dump(2) + "\n";
}

}  // namespace ratplus
