// Generation (SPEC §10 `ratplus generate`): every prompt is prefilled, then all sequences advance one token
// per step in one batch until each has its N new tokens or has produced the EOS token (which it keeps).
// A token is chosen from the logits at temperature 0 by argmax (ties to the lower id), otherwise by sampling
// softmax(logits / temperature) after keeping the top-k ids and then the smallest set of ids whose
// probability reaches top-p; the draws are a pure function of the seed, the sequence and the step. Each
// generated token's log-probability is its log-softmax under the model (temperature 1, no truncation).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "inference/decoder.h"
#include "model/model.h"
#include "model/pattern.h"

namespace ratplus {

struct Sampling {
  double temperature = 0;  // 0 = greedy
  int64_t top_k = 0;       // 0 = every id
  double top_p = 1;        // 1 = no nucleus cut
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t max_new = 0;
  int64_t eos_id = -1;  // −1 = none
  Sampling sampling;
  CachePrecision cache = CachePrecision::model;
};

struct GeneratedSequence {
  std::vector<int32_t> prompt, tokens;
  std::vector<double> logprobs;
};

// Called as each step's tokens are chosen: the sequence and its new token.
using TokenCallback = std::function<void(int64_t sequence, int32_t token)>;

// InputError for an empty prompt, a prompt id outside the vocabulary, max_new < 1 or bad sampling settings.
std::vector<GeneratedSequence> generate(Model& model, const Pattern& pattern,
                                        const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerateOptions& options, const TokenCallback& on_token = {});

// The id chosen from one row of logits (draw: a uniform number in (0, 1), used when sampling).
int32_t choose_token(std::span<const double> logits, const Sampling& sampling, double draw);

}  // namespace ratplus
