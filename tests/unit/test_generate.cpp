// Token choice (SPEC §10): greedy is the argmax with ties to the lower id; sampling follows
// softmax(logits / temperature), cut to the top-k ids and then to the smallest set reaching top-p.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "inference/generate.h"

namespace ratplus {
namespace {

// How often each id is chosen over n draws of the counter-based generator.
std::vector<double> frequencies(const std::vector<double>& logits, const Sampling& s, int n) {
  std::vector<double> count(logits.size(), 0);
  for (int i = 0; i < n; ++i) count[choose_token(logits, s, uniform_open01(s.seed, i))] += 1.0 / n;
  return count;
}

TEST(ChooseToken, GreedyIsTheArgmaxWithTiesToTheLowerId) {
  EXPECT_EQ(choose_token(std::vector<double>{0.5, 2.0, -1.0, 2.0}, Sampling{}, 0.9), 1);
  EXPECT_EQ(choose_token(std::vector<double>{3.0}, Sampling{}, 0.1), 0);
}

TEST(ChooseToken, SamplingFollowsTheSoftmax) {
  const std::vector<double> logits = {0.0, std::log(2.0), std::log(3.0)};  // probabilities 1/6, 2/6, 3/6
  const std::vector<double> f = frequencies(logits, {1.0, 0, 1.0, 7}, 60000);
  EXPECT_NEAR(f[0], 1.0 / 6, 0.01);
  EXPECT_NEAR(f[1], 2.0 / 6, 0.01);
  EXPECT_NEAR(f[2], 3.0 / 6, 0.01);
  // Temperature 2 flattens: probabilities ∝ 1, √2, √3.
  const double z = 1 + std::sqrt(2.0) + std::sqrt(3.0);
  const std::vector<double> g = frequencies(logits, {2.0, 0, 1.0, 8}, 60000);
  EXPECT_NEAR(g[0], 1 / z, 0.01);
  EXPECT_NEAR(g[2], std::sqrt(3.0) / z, 0.01);
}

TEST(ChooseToken, TopKAndTopPCutTheTail) {
  const std::vector<double> logits = {0.0, std::log(2.0), std::log(3.0)};
  const std::vector<double> k2 = frequencies(logits, {1.0, 2, 1.0, 9}, 30000);
  EXPECT_EQ(k2[0], 0.0);
  EXPECT_NEAR(k2[2], 3.0 / 5, 0.015);
  // top-p 0.5: the most likely id alone holds half the probability.
  EXPECT_NEAR(frequencies(logits, {1.0, 0, 0.5, 10}, 1000)[2], 1.0, 1e-9);
  // top-p 0.6 needs the two most likely ids.
  const std::vector<double> p6 = frequencies(logits, {1.0, 0, 0.6, 11}, 30000);
  EXPECT_EQ(p6[0], 0.0);
  EXPECT_NEAR(p6[1], 2.0 / 5, 0.015);
  // top-k 1 is greedy whatever the temperature.
  EXPECT_NEAR(frequencies(logits, {5.0, 1, 1.0, 12}, 1000)[2], 1.0, 1e-9);
}

}  // namespace
}  // namespace ratplus
