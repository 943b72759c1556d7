// Generation over the decoder (see generate.h).
#include "inference/generate.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <numeric>

#include "core/rng.h"
#include "inference/decoder.h"

namespace ratplus {

namespace {

// log Σ exp(x).
double log_sum_exp(std::span<const double> x) {
  const double max = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (const double v : x) sum += std::exp(v - max);
  return max + std::log(sum);
}

}  // namespace

int32_t choose_token(std::span<const double> logits, const Sampling& s, double draw) {
  const auto n = static_cast<int64_t>(logits.size());
  if (s.temperature == 0) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  // Most likely first; equal logits in id order.
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const int64_t kept = s.top_k > 0 ? std::min(s.top_k, n) : n;
  std::vector<double> p(kept);
  for (int64_t i = 0; i < kept; ++i) p[i] = std::exp((logits[ids[i]] - logits[ids[0]]) / s.temperature);
  const double total = std::accumulate(p.begin(), p.end(), 0.0);
  int64_t nucleus = 0;
  for (double mass = 0; nucleus < kept && (nucleus == 0 || mass < s.top_p * total);) mass += p[nucleus++];
  const double mass = std::accumulate(p.begin(), p.begin() + nucleus, 0.0);
  double target = draw * mass;
  for (int64_t i = 0; i < nucleus; ++i) {
    target -= p[i];
    if (target <= 0) return ids[i];
  }
  return ids[nucleus - 1];
}

std::vector<GeneratedSequence> generate(Model& model, const Pattern& pattern,
                                        const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerateOptions& options, const TokenCallback& on_token) {
  const Sampling& s = options.sampling;
  require_input(!prompts.empty(), "generate: no prompt given");
  require_input(options.max_new >= 1, fmt::format("--max-new must be at least 1, got {}", options.max_new));
  require_input(s.temperature >= 0 && std::isfinite(s.temperature),
                fmt::format("--temperature must be 0 or more, got {}", s.temperature));
  require_input(s.top_k >= 0, fmt::format("--top-k must be 0 or more, got {}", s.top_k));
  require_input(s.top_p > 0 && s.top_p <= 1, fmt::format("--top-p must be in (0, 1], got {}", s.top_p));
  require_input(options.eos_id >= -1 && options.eos_id < model.config().vocab_size,
                fmt::format("--eos-id {} is outside the vocabulary of {}", options.eos_id, model.config().vocab_size));
  const auto batch = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    require_input(!prompts[b].empty(), fmt::format("generate: prompt {} is empty", b));
    longest = std::max(longest, prompts[b].size());
  }
  const int64_t vocab = model.config().vocab_size;
  Decoder decoder(model, pattern, batch, static_cast<int64_t>(longest) + options.max_new, options.cache);
  Arena logits_memory;
  logits_memory.reserve("logits", batch, vocab, model.gradient_dtype());
  logits_memory.allocate(model.device());
  const Tensor logits = logits_memory.get(0);

  std::vector<GeneratedSequence> out(batch);
  for (int64_t b = 0; b < batch; ++b) {
    out[b].prompt = prompts[b];
    decoder.prefill(b, prompts[b], logits.rows_slice(b, 1));
  }
  std::vector<bool> done(batch, false);
  std::vector<int32_t> next(batch);
  for (int64_t step = 0; step < options.max_new; ++step) {
    for (int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      const std::vector<double> row = to_host_doubles(logits.rows_slice(b, 1));
      const double draw = uniform_open01(s.seed, static_cast<uint64_t>(b * options.max_new + step));
      next[b] = choose_token(row, s, draw);
      out[b].tokens.push_back(next[b]);
      out[b].logprobs.push_back(row[next[b]] - log_sum_exp(row));
      if (on_token) on_token(b, next[b]);
      done[b] = next[b] == options.eos_id || static_cast<int64_t>(out[b].tokens.size()) == options.max_new;
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    decoder.step(next, logits);  // finished sequences repeat their last token; their logits go unused
  }
  return out;
}

}  // namespace ratplus
