// Recall scoring in batched teacher-forced forward passes, and its per-depth report (see recall_task.h).
#include "inference/recall_task.h"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "core/error.h"
#include "inference/token_scores.h"

namespace ratplus {

std::vector<RecallScore> score_recall(Model& model, const Pattern& pattern, const std::vector<RecallSample>& samples,
                                      int64_t micro_batch) {
  const ModelConfig& c = model.config();
  pattern.check_fits(c.n_layers, c.n_heads);
  require_input(micro_batch >= 1, "--micro-batch must be at least 1");
  const int64_t vocab = model.table().vocab_rows();
  check_internal(vocab == c.vocab_size, "recall scoring needs the whole vocabulary on one rank");
  if (samples.empty()) return {};
  const auto seq = int64_t(samples[0].tokens.size()) - 1;
  constexpr int64_t L = kRecallValueTokens;
  check_internal(seq >= L, "recall scoring: samples shorter than their value");

  const int64_t most = std::min<int64_t>(micro_batch, int64_t(samples.size()));
  Arena arena;
  const int handle = arena.reserve("recall logits", most * L, vocab, model.gradient_dtype());
  arena.allocate(model.device());
  const Tensor logits = arena.get(handle);

  std::vector<RecallScore> scores(samples.size());
  for (size_t first = 0; first < samples.size(); first += size_t(most)) {
    const int64_t n = std::min<int64_t>(most, int64_t(samples.size() - first));
    std::vector<int32_t> tokens, targets;
    std::vector<int64_t> rows;
    for (int64_t b = 0; b < n; ++b) {
      const std::vector<int32_t>& s = samples[first + size_t(b)].tokens;
      check_internal(int64_t(s.size()) == seq + 1, "recall scoring: samples of different lengths");
      tokens.insert(tokens.end(), s.begin(), s.end() - 1);
      for (int64_t j = 0; j < L; ++j) {
        rows.push_back(b * seq + seq - L + j);  // the position before value token j
        targets.push_back(s[size_t(seq + 1 - L + j)]);
      }
    }
    const Tensor out = logits.rows_slice(0, n * L);
    model.forward({tokens.data(), n, seq, pattern}, LogitsOutput{rows, out});
    const std::vector<float> host = to_host_floats(out);
    for (int64_t b = 0; b < n; ++b) {
      RecallScore& score = scores[first + size_t(b)];
      score.exact = true;
      for (int64_t j = 0; j < L; ++j) {
        const int64_t r = b * L + j;
        const float* row = host.data() + r * vocab;
        score.logprob += log_probability(row, vocab, targets[size_t(r)]);
        score.exact = score.exact && greedy_token(row, vocab) == targets[size_t(r)];
      }
    }
  }
  return scores;
}

std::vector<RecallResult> recall_results(const std::string& pattern, const RecallLayout& layout,
                                         const std::vector<RecallSample>& samples,
                                         const std::vector<RecallScore>& scores) {
  check_internal(samples.size() == scores.size(), "recall_results: sizes differ");
  std::vector<RecallResult> results;
  for (const double depth : layout.depths) results.push_back({pattern, depth, 0, 0, 0});
  for (size_t i = 0; i < samples.size(); ++i) {
    RecallResult& r = results.at(samples[i].depth);
    ++r.n;
    r.exact_match += scores[i].exact;
    r.value_logprob += scores[i].logprob;
  }
  for (RecallResult& r : results)
    if (r.n > 0) {
      r.exact_match /= double(r.n);
      r.value_logprob /= double(r.n * kRecallValueTokens);
    }
  return results;
}

std::string recall_results_json(const RecallLayout& layout, const RecallMarkers& markers,
                                const std::vector<RecallResult>& results) {
  nlohmann::json list = nlohmann::json::array();
  for (const RecallResult& r : results)
    list.push_back({{"pattern", r.pattern},
                    {"depth", r.depth},
                    {"n", r.n},
                    {"exact_match", r.exact_match},
                    {"value_logprob", r.value_logprob}});
  const nlohmann::json report{
      {"task", "recall"},
      {"seq_len", layout.seq_len},
      {"needles", layout.needles},
      {"seed", layout.seed},
      {"depths", layout.depths},
      {"key_tokens", kRecallKeyTokens},
      {"value_tokens", kRecallValueTokens},
      {"haystack_tokens", recall_haystack_tokens(layout.seq_len)},
      {"markers", {{"needle", markers.needle}, {"separator", markers.separator}, {"query", markers.query}}},
      {"results", list}};
  return report.dump(2) + "\n";
}

}  // namespace ratplus
