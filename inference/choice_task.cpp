// Multiple-choice scoring in batched forward passes, and its accuracies (see choice_task.h).
#include "inference/choice_task.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/buffer.h"
#include "core/error.h"
#include "inference/token_scores.h"

namespace ratplus {

namespace {

// One ending after its context, as the model reads it: tokens [start, start + length) of context + ending,
// whose last `scored` positions predict the ending's tokens.
struct Candidate {
  size_t question, ending;
  int64_t start, length, scored;
};

// One forward pass: candidates [begin, end) of the sorted list, each padded on the right to `seq` tokens.
struct Pass {
  size_t begin, end;
  int64_t seq, rows;
};

std::vector<Candidate> candidates_longest_first(const std::vector<ChoiceQuestion>& questions, int64_t window) {
  std::vector<Candidate> list;
  for (size_t q = 0; q < questions.size(); ++q)
    for (size_t e = 0; e < questions[q].endings.size(); ++e) {
      const auto ending = int64_t(questions[q].endings[e].size());
      const int64_t read = int64_t(questions[q].context.size()) + ending - 1;  // all but the last token
      const int64_t length = std::min(read, window);
      list.push_back({q, e, read - length, length, ending});
    }
  std::stable_sort(list.begin(), list.end(),
                   [](const Candidate& a, const Candidate& b) { return a.length > b.length; });
  return list;
}

// Lengths rounded up to a multiple of 64 (at most the window), so that the passes come in few shapes and the
// model keeps its activations from one pass to the next.
int64_t padded_length(int64_t length, int64_t window) { return std::min(window, (length + 63) / 64 * 64); }

std::vector<Pass> plan_passes(const std::vector<Candidate>& list, const ChoiceBatching& batching) {
  std::vector<Pass> passes;
  for (size_t i = 0; i < list.size();) {
    Pass p{i, i, padded_length(list[i].length, batching.window), 0};
    while (p.end < list.size() && int64_t(p.end - p.begin) < batching.sequences &&
           (p.end == p.begin || p.rows + list[p.end].scored <= batching.logit_rows)) {
      p.rows += list[p.end].scored;
      ++p.end;
    }
    passes.push_back(p);
    i = p.end;
  }
  return passes;
}

}  // namespace

int64_t logit_rows_for(int64_t vocab_size) {
  constexpr int64_t kLogitBytes = int64_t(256) << 20;
  return std::max<int64_t>(1, kLogitBytes / (vocab_size * int64_t(sizeof(float))));
}

int64_t most_logit_rows(const std::vector<ChoiceQuestion>& questions, const ChoiceBatching& batching) {
  int64_t most = 0;
  for (const Pass& p : plan_passes(candidates_longest_first(questions, batching.window), batching))
    most = std::max(most, p.rows);
  return most;
}

void check_choice_window(const std::vector<ChoiceQuestion>& questions, int64_t window) {
  require_input(window >= 1, fmt::format("--seq-len must be at least 1, got {}", window));
  for (const ChoiceQuestion& q : questions)
    for (size_t e = 0; e < q.endings.size(); ++e)
      require_input(int64_t(q.endings[e].size()) <= window,
                    fmt::format("{}: ending {} has {} tokens, more than the window of {} (--seq-len)", q.where, e,
                                q.endings[e].size(), window));
}

std::vector<std::vector<double>> ending_log_likelihoods(Model& model, const Pattern& pattern,
                                                        const std::vector<ChoiceQuestion>& questions,
                                                        const ChoiceBatching& batching) {
  const ModelConfig& c = model.config();
  pattern.check_fits(c.n_layers, c.n_heads);
  check_choice_window(questions, batching.window);
  require_input(batching.sequences >= 1, "--micro-batch must be at least 1");
  const int64_t vocab = model.table().vocab_rows();
  check_internal(vocab == c.vocab_size, "choice scoring needs the whole vocabulary on one rank");

  const std::vector<Candidate> list = candidates_longest_first(questions, batching.window);
  const std::vector<Pass> passes = plan_passes(list, batching);
  Arena arena;
  const int handle =
      arena.reserve("choice logits", most_logit_rows(questions, batching), vocab, model.gradient_dtype());
  arena.allocate(model.device());
  const Tensor logits = arena.get(handle);

  std::vector<std::vector<double>> result(questions.size());
  for (size_t q = 0; q < questions.size(); ++q) result[q].assign(questions[q].endings.size(), 0.0);
  for (const Pass& p : passes) {
    const auto n = int64_t(p.end - p.begin);
    std::vector<int32_t> tokens(size_t(n * p.seq), 0), targets;
    std::vector<int64_t> rows;
    for (int64_t b = 0; b < n; ++b) {
      const Candidate& k = list[p.begin + size_t(b)];
      const ChoiceQuestion& q = questions[k.question];
      const std::vector<int32_t>& ending = q.endings[k.ending];
      const auto context = int64_t(q.context.size());
      for (int64_t t = 0; t < k.length; ++t) {
        const int64_t i = k.start + t;  // index into context + ending
        tokens[size_t(b * p.seq + t)] = i < context ? q.context[size_t(i)] : ending[size_t(i - context)];
      }
      for (int64_t j = 0; j < k.scored; ++j) {
        rows.push_back(b * p.seq + k.length - k.scored + j);
        targets.push_back(ending[size_t(j)]);
      }
    }
    const Tensor out = logits.rows_slice(0, p.rows);
    model.forward({tokens.data(), n, p.seq, pattern}, LogitsOutput{rows, out});
    const std::vector<float> host = to_host_floats(out);
    std::vector<double> log_p(rows.size());
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < int64_t(rows.size()); ++r)
      log_p[size_t(r)] = log_probability(host.data() + r * vocab, vocab, targets[size_t(r)]);
    size_t r = 0;
    for (int64_t b = 0; b < n; ++b) {
      const Candidate& k = list[p.begin + size_t(b)];
      for (int64_t j = 0; j < k.scored; ++j) result[k.question][k.ending] += log_p[r++];
    }
  }
  return result;
}

int64_t best_choice(std::span<const double> scores) {
  size_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i)
    if (scores[i] > scores[best]) best = i;
  return int64_t(best);
}

ChoiceResult choice_result(const std::string& pattern, const std::vector<ChoiceQuestion>& questions,
                           const std::vector<std::vector<double>>& log_likelihoods) {
  check_internal(questions.size() == log_likelihoods.size() && !questions.empty(), "choice_result: sizes differ");
  int64_t right = 0, right_norm = 0;
  for (size_t q = 0; q < questions.size(); ++q) {
    const std::vector<double>& ll = log_likelihoods[q];
    std::vector<double> normalised(ll.size());
    for (size_t e = 0; e < ll.size(); ++e) normalised[e] = ll[e] / questions[q].ending_lengths[e];
    right += best_choice(ll) == questions[q].label;
    right_norm += best_choice(normalised) == questions[q].label;
  }
  const auto n = int64_t(questions.size());
  const auto stderr_of = [n](double p) { return n > 1 ? std::sqrt(p * (1 - p) / double(n - 1)) : 0.0; };
  ChoiceResult r{pattern, n, double(right) / double(n), 0, double(right_norm) / double(n), 0};
  r.acc_stderr = stderr_of(r.acc);
  r.acc_norm_stderr = stderr_of(r.acc_norm);
  return r;
}

std::string choice_results_json(const std::vector<ChoiceResult>& results) {
  nlohmann::json list = nlohmann::json::array();
  for (const ChoiceResult& r : results)
    list.push_back({{"pattern", r.pattern},
                    {"n", r.n},
                    {"acc", r.acc},
                    {"acc_stderr", r.acc_stderr},
                    {"acc_norm", r.acc_norm},
                    {"acc_norm_stderr", r.acc_norm_stderr}});
  return nlohmann::json{{"results", list}}.dump(2) + "\n";
}

}  // namespace ratplus
