// Recall scoring (`ratplus eval --task recall`, SPEC §6 "Recall evaluation"): how well a model under an
// attention pattern continues each sample's query with the needle's value, and the per-depth report.
// One forward pass per batch of samples reads each sample's first T tokens (the value teacher-forced) and
// brings the logits of the last L positions — the ones that predict the value's tokens — to the host. Greedy
// decoding reproduces the value exactly when every value token is the argmax (ties to the lower id) of the
// logits that precede it: the first token where it is not is the first greedy decoding gets wrong, so this
// is exact match of greedy decoding without its L sequential steps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inference/recall_needles.h"
#include "model/model.h"
#include "model/pattern.h"

namespace ratplus {

struct RecallScore {
  bool exact = false;    // every value token is the greedy choice
  double logprob = 0;    // Σ over the value's tokens of log softmax(logits)[token]
};

// The scores of every sample (each T + 1 tokens) under the pattern, `micro_batch` samples per forward pass.
std::vector<RecallScore> score_recall(Model& model, const Pattern& pattern, const std::vector<RecallSample>& samples,
                                      int64_t micro_batch);

struct RecallResult {
  std::string pattern;       // the text as given
  double depth = 0;
  int64_t n = 0;             // samples at this depth
  double exact_match = 0;    // fraction of them whose value greedy decoding reproduces
  double value_logprob = 0;  // mean log-probability of their value tokens (nats per token)
};

// One result per depth of the layout, in its order.
std::vector<RecallResult> recall_results(const std::string& pattern, const RecallLayout& layout,
                                         const std::vector<RecallSample>& samples,
                                         const std::vector<RecallScore>& scores);

// {"task": "recall", "seq_len", "needles", "seed", "depths", "key_tokens", "value_tokens", "haystack_tokens",
//  "markers": {"needle", "separator", "query"}, "results": [{"pattern", "depth", "n", "exact_match",
//  "value_logprob"}, ...]}
std::string recall_results_json(const RecallLayout& layout, const RecallMarkers& markers,
                                const std::vector<RecallResult>& results);

}  // namespace ratplus
