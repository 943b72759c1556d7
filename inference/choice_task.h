// Multiple-choice scoring (`ratplus eval --task choice`, SPEC §10): the summed log-likelihood of every
// ending given its context under an attention pattern, computed in batched forward passes (one sequence per
// candidate, batches of similar lengths, right padding), and the accuracies that follow from it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "inference/choice_data.h"
#include "model/model.h"
#include "model/pattern.h"

namespace ratplus {

struct ChoiceBatching {
  int64_t window = 0;       // T: the longest sequence the model reads; longer contexts lose their start
  int64_t sequences = 4;    // candidate sequences per forward pass
  int64_t logit_rows = 64;  // scored positions per pass (their logits come to the host), unless one
                            // candidate alone has more
};

// The scored positions whose f32 logits over `vocab_size` ids fill 256 MiB (at least one).
int64_t logit_rows_for(int64_t vocab_size);

// The most scored positions any pass of these questions holds: the rows of the logits buffer.
int64_t most_logit_rows(const std::vector<ChoiceQuestion>& questions, const ChoiceBatching& batching);

// InputError naming the question when an ending is longer than the window.
void check_choice_window(const std::vector<ChoiceQuestion>& questions, int64_t window);

// log p(ending | context) per question and ending: the sum over the ending's tokens of the log-softmax of the
// model's logits at the position before each. The sequence read is context + ending without its last token,
// cut to its last `window` tokens.
std::vector<std::vector<double>> ending_log_likelihoods(Model& model, const Pattern& pattern,
                                                        const std::vector<ChoiceQuestion>& questions,
                                                        const ChoiceBatching& batching);

// The index of the largest score; ties go to the lowest index.
int64_t best_choice(std::span<const double> scores);

struct ChoiceResult {
  std::string pattern;  // the text as given
  int64_t n = 0;        // questions
  double acc = 0, acc_stderr = 0;
  double acc_norm = 0, acc_norm_stderr = 0;
};

// acc: the fraction of questions whose largest log-likelihood is the label's; acc_norm: the same with each
// log-likelihood divided by its ending's length. Each standard error is sqrt(p (1 − p) / (n − 1)), the sample
// standard deviation of the per-question 0/1 outcomes over sqrt(n) (0 for a single question).
ChoiceResult choice_result(const std::string& pattern, const std::vector<ChoiceQuestion>& questions,
                           const std::vector<std::vector<double>>& log_likelihoods);

// {"results": [{"pattern", "n", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr"}, ...]}
std::string choice_results_json(const std::vector<ChoiceResult>& results);

}  // namespace ratplus
