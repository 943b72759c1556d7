// Scores of one row of logits against a token, shared by the evaluation tasks that read a model's logits on
// the host: the log-probability of a token, and the token greedy decoding would choose.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ratplus {

// log softmax(logits)[target], in double (logits f32 or f64).
template <class T>
double log_probability(const T* logits, int64_t vocab, int32_t target) {
  const double max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(logits[v]) - max);
  return double(logits[target]) - max - std::log(sum);
}

// The argmax of the row, ties to the lower id: the choice of greedy decoding (inference/generate.h).
inline int32_t greedy_token(const float* logits, int64_t vocab) {
  return int32_t(std::max_element(logits, logits + vocab) - logits);
}

}  // namespace ratplus
