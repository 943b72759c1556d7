// Evaluation (SPEC §6, §10): the loss of a model on the first N windows of a token stream under each of
// several attention patterns, and the JSON report of `ratplus eval`. The loss comes from one forward pass
// per micro-batch of windows, or, with `decode`, from decoding them (inference/decoder.h): each window's
// first token prefilled, every later one appended by a step, teacher-forced — the path `generate` takes,
// through the compact caches, which equals the forward's loss up to rounding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_shard.h"
#include "inference/decoder.h"
#include "model/model.h"
#include "model/pattern.h"

namespace ratplus {

struct EvalResult {
  std::string pattern;  // the text as given
  double loss = 0;      // mean cross-entropy over all non-ignored labels
  int64_t tokens = 0;   // labels counted
};

struct EvalOptions {
  int64_t seq_len = 0;
  int64_t windows = 0;      // the first N windows of SPEC §9
  int64_t eos_id = -1;
  int64_t micro_batch = 4;  // windows per forward pass, or decoded together
  bool decode = false;
  CachePrecision cache = CachePrecision::model;  // of the decoder (decode only)
};

// Checks every pattern against the model and the window count against the data before computing
// anything (InputError otherwise).
std::vector<EvalResult> evaluate_patterns(Model& model, const TokenStream& data, const EvalOptions& options,
                                          const std::vector<Pattern>& patterns);

// {"results": [{"pattern": ..., "loss": ..., "ppl": ..., "tokens": ...}, ...]}
std::string eval_results_json(const std::vector<EvalResult>& results);

}  // namespace ratplus
