// Evaluation under patterns: checks the request against model and data, then each pattern's loss over
// the first N windows, from forward passes (model/window_loss.h) or by decoding (inference/decoder.h).
#include "inference/evaluate.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <span>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "core/error.h"
#include "inference/decoder.h"
#include "inference/token_scores.h"
#include "model/window_loss.h"

namespace ratplus {

namespace {

// The loss of windows 0 … windows − 1 decoded `micro_batch` at a time, teacher-forced. A last micro-batch
// with fewer windows decodes copies of its first window in the spare sequences, unscored.
LossSum decoded_loss(Model& model, const Pattern& pattern, const WindowSource& source, int64_t windows,
                     int64_t seq_len, int64_t micro_batch, CachePrecision cache) {
  const int64_t vocab = model.config().vocab_size, batch = std::min(micro_batch, windows), T = seq_len;
  Decoder decoder(model, pattern, batch, T, cache);
  Arena arena;
  const int handle = arena.reserve("decoded logits", batch, vocab, model.gradient_dtype());
  arena.allocate(model.device());
  const Tensor logits = arena.get(handle);
  std::vector<int32_t> inputs(batch * T), targets(batch * T), tokens(batch);
  LossSum total;
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t n = std::min(batch, windows - first);
    for (int64_t b = 0; b < batch; ++b) source(first + (b < n ? b : 0), &inputs[b * T], &targets[b * T]);
    const auto score = [&](int64_t t) {  // the logits of position t of every scored sequence
      const std::vector<double> host = to_host_doubles(logits);
      for (int64_t b = 0; b < n; ++b)
        if (const int32_t target = targets[b * T + t]; target >= 0) {
          total.sum -= log_probability(host.data() + b * vocab, vocab, target);
          ++total.count;
        }
    };
    for (int64_t b = 0; b < batch; ++b) decoder.prefill(b, std::span(&inputs[b * T], 1), logits.rows_slice(b, 1));
    score(0);
    for (int64_t t = 1; t < T; ++t) {
      for (int64_t b = 0; b < batch; ++b) tokens[b] = inputs[b * T + t];
      decoder.step(tokens, logits);
      score(t);
    }
  }
  return total;
}

}  // namespace

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
    const LossSum l =
        options.decode
            ? decoded_loss(model, p, source, options.windows, options.seq_len, options.micro_batch, options.cache)
            : window_loss(model, p, source, options.windows, options.seq_len, options.micro_batch);
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
