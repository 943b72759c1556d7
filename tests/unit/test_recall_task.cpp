// Recall evaluation (`eval --task recall`): the samples checked against the layout's definition (haystacks as
// aligned chunks of the data drawn without replacement, the needle after round(depth · H) of them, the query
// and value at the end, one key and value per trial at every depth, a pure function of the seed); the batched
// scores against the model's cross-entropy over one sample at a time and exact match against greedy
// `generate` on the same prefix; the per-depth aggregation; bad layouts refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/temp_dir.h"
#include "data/synthetic.h"
#include "inference/generate.h"
#include "inference/recall_task.h"
#include "model_test_util.h"
#include "test_util.h"

namespace ratplus {
namespace {

constexpr int64_t kVocab = 13;
constexpr int64_t K = kRecallKeyTokens, L = kRecallValueTokens;

// An llm.c shard of `count` random ids below kVocab, and the ids themselves.
struct Data {
  TempDir dir{"recall"};
  std::vector<int32_t> ids;
  explicit Data(int64_t count) {
    std::vector<uint32_t> raw;
    for (int64_t i = 0; i < count; ++i) raw.push_back(uint32_t(splitmix64(uint64_t(i) + 991) % kVocab));
    write_llmc_shard(dir.file("data.bin"), raw, 1);
    ids.assign(raw.begin(), raw.end());
  }
  TokenStream stream() const { return TokenStream({dir.file("data.bin")}, ShardFormat::llmc, kVocab); }
};

// The aligned chunk c (tokens [c·H, c·H + H)) of the data equal to `haystack`; −1 when none is.
int64_t matching_chunk(const std::vector<int32_t>& ids, const std::vector<int32_t>& haystack) {
  const auto h = int64_t(haystack.size());
  int64_t found = -1;
  for (int64_t c = 0; (c + 1) * h <= int64_t(ids.size()); ++c)
    if (std::equal(haystack.begin(), haystack.end(), ids.begin() + c * h)) {
      EXPECT_EQ(found, -1) << "two chunks match";
      found = c;
    }
  return found;
}

TEST(RecallLayout, SamplesFollowTheDefinition) {
  const Data data(2000);
  const TokenStream stream = data.stream();
  const RecallLayout layout{40, {0.25, 0.5, 0.9}, 6, 7};
  const int64_t H = 40 + 1 - 2 * (K + L + 2);
  ASSERT_EQ(recall_haystack_tokens(40), H);
  const std::vector<RecallSample> samples = recall_samples(stream, layout);
  ASSERT_EQ(samples.size(), 18u);

  std::vector<int64_t> chunk_of_trial(6, -1);
  std::vector<std::vector<int32_t>> key_of_trial(6), value_of_trial(6);
  for (size_t i = 0; i < samples.size(); ++i) {
    const RecallSample& s = samples[i];
    ASSERT_EQ(s.depth, i / 6);
    ASSERT_EQ(s.trial, int64_t(i % 6));
    ASSERT_EQ(s.tokens.size(), 41u);
    const auto p = int64_t(std::round(layout.depths[s.depth] * double(H)));
    ASSERT_EQ(s.needle_start, p);
    const auto at = [&](int64_t i) { return s.tokens[size_t(i)]; };
    // The needle: marker V−1, the key, separator V−2, the value.
    EXPECT_EQ(at(p), kVocab - 1);
    EXPECT_EQ(at(p + 1 + K), kVocab - 2);
    const std::vector<int32_t> key(s.tokens.begin() + p + 1, s.tokens.begin() + p + 1 + K);
    const std::vector<int32_t> value(s.tokens.begin() + p + 2 + K, s.tokens.begin() + p + 2 + K + L);
    // The tail: marker V−3, the same key, the separator, the same value, ending the sample.
    const int64_t q = 41 - (K + L + 2);
    EXPECT_EQ(at(q), kVocab - 3);
    EXPECT_EQ(std::vector<int32_t>(s.tokens.begin() + q + 1, s.tokens.begin() + q + 1 + K), key);
    EXPECT_EQ(at(q + 1 + K), kVocab - 2);
    EXPECT_EQ(std::vector<int32_t>(s.tokens.end() - L, s.tokens.end()), value);
    for (const int32_t id : key) EXPECT_LT(id, kVocab - 3);
    for (const int32_t id : value) EXPECT_LT(id, kVocab - 3);
    // The rest, in order, is an aligned chunk of the data.
    std::vector<int32_t> haystack(s.tokens.begin(), s.tokens.begin() + p);
    haystack.insert(haystack.end(), s.tokens.begin() + p + K + L + 2, s.tokens.begin() + q);
    ASSERT_EQ(int64_t(haystack.size()), H);
    const int64_t chunk = matching_chunk(data.ids, haystack);
    EXPECT_GE(chunk, 0) << "sample " << i;
    // Every depth of a trial has the same haystack, key and value.
    if (s.depth == 0) {
      chunk_of_trial[size_t(s.trial)] = chunk;
      key_of_trial[size_t(s.trial)] = key;
      value_of_trial[size_t(s.trial)] = value;
    } else {
      EXPECT_EQ(chunk, chunk_of_trial[size_t(s.trial)]);
      EXPECT_EQ(key, key_of_trial[size_t(s.trial)]);
      EXPECT_EQ(value, value_of_trial[size_t(s.trial)]);
    }
  }
  EXPECT_EQ(std::set<int64_t>(chunk_of_trial.begin(), chunk_of_trial.end()).size(), 6u) << "chunks repeat";
}

TEST(RecallLayout, ChunksAreDrawnWithoutReplacementAndIdsCoverTheirRange) {
  const Data data(2000);
  const TokenStream stream = data.stream();
  const int64_t chunks = 2000 / recall_haystack_tokens(40);
  const std::vector<RecallSample> samples = recall_samples(stream, {40, {0.5}, chunks, 3});
  std::set<int64_t> seen;
  std::set<int32_t> ids;
  for (const RecallSample& s : samples) {
    std::vector<int32_t> haystack(s.tokens.begin(), s.tokens.begin() + s.needle_start);
    haystack.insert(haystack.end(), s.tokens.begin() + s.needle_start + K + L + 2, s.tokens.end() - (K + L + 2));
    seen.insert(matching_chunk(data.ids, haystack));
    ids.insert(s.tokens.end() - L, s.tokens.end());
  }
  EXPECT_EQ(int64_t(seen.size()), chunks) << "every chunk once when all are asked for";
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(int64_t(ids.size()), kVocab - 3) << "values take every id below the markers";
}

TEST(RecallLayout, SameSeedSameSamplesOtherSeedOthers) {
  const Data data(2000);
  const TokenStream stream = data.stream();
  const RecallLayout layout{40, {0.1, 0.7}, 5, 11};
  const auto tokens = [&](uint64_t seed) {
    RecallLayout l = layout;
    l.seed = seed;
    std::vector<std::vector<int32_t>> all;
    for (const RecallSample& s : recall_samples(stream, l)) all.push_back(s.tokens);
    return all;
  };
  EXPECT_EQ(tokens(11), tokens(11));
  EXPECT_NE(tokens(11), tokens(12));
  const std::vector<std::vector<int32_t>> a = tokens(11), b = tokens(12);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NE(std::vector<int32_t>(a[i].end() - L, a[i].end()), std::vector<int32_t>(b[i].end() - L, b[i].end()))
        << "sample " << i << " has the same value under both seeds";
}

TEST(RecallLayout, BadLayoutsAreRefusedByName) {
  const Data data(200);
  const TokenStream stream = data.stream();
  const auto refused = [&](const RecallLayout& layout, const std::vector<std::string>& fragments) {
    test::expect_input_error([&] { recall_samples(stream, layout); }, fragments);
  };
  refused({19, {0.5}, 1, 0}, {"--seq-len 19", "at least 20"});
  refused({20, {0.0}, 1, 0}, {"--depths", "0 is not inside (0, 1)"});
  refused({20, {1.0}, 1, 0}, {"--depths", "1 is not inside (0, 1)"});
  refused({20, {-0.5}, 1, 0}, {"--depths", "-0.5"});
  refused({20, {0.5, 0.25, 0.5}, 1, 0}, {"--depths lists 0.5 twice"});
  refused({20, {}, 1, 0}, {"--depths lists no depth"});
  refused({20, {0.5}, 0, 0}, {"--needles must be at least 1"});
  // 200 tokens hold 9 haystacks of 21 tokens (T 40).
  refused({40, {0.5}, 10, 0}, {"--data holds 200 tokens", "9 haystacks of 21 tokens", "the 10 of --needles"});
  EXPECT_EQ(recall_samples(stream, {40, {0.5}, 9, 0}).size(), 9u);
}

// The value's log-likelihood from the model's summed cross-entropy over one sample, only the value labelled.
double reference_logprob(Model& model, const Pattern& pattern, const RecallSample& s) {
  const auto seq = int64_t(s.tokens.size()) - 1;
  const std::vector<int32_t> inputs(s.tokens.begin(), s.tokens.end() - 1);
  std::vector<int32_t> targets(size_t(seq), -1);
  for (int64_t t = seq - L; t < seq; ++t) targets[size_t(t)] = s.tokens[size_t(t + 1)];
  const LossSum loss = test::batch_loss(model, inputs.data(), targets.data(), 1, seq, pattern);
  EXPECT_EQ(loss.count, L);
  return -loss.sum;
}

// The value greedy decoding continues the sample's prompt (all but its value) with.
std::vector<int32_t> greedy_value(Model& model, const Pattern& pattern, const RecallSample& s) {
  const std::vector<int32_t> prompt(s.tokens.begin(), s.tokens.end() - L);
  return generate(model, pattern, {prompt}, {L, -1, {}})[0].tokens;
}

class RecallScoring : public ::testing::TestWithParam<const char*> {};

TEST_P(RecallScoring, BatchedScoresEqualTheLossAndGreedyGenerate) {
  Model model(test::tiny_model_config(kVocab, true, false), Device::cpu, DType::f32);
  model.init_parameters(5);
  const Pattern pattern = Pattern::parse(GetParam());
  const Data data(3000);
  std::vector<RecallSample> samples = recall_samples(data.stream(), {48, {0.2, 0.6, 0.95}, 6, 1});
  // Half of them get the value greedy decoding produces, so exact match is true for some.
  for (size_t i = 0; i < samples.size(); i += 2) {
    const std::vector<int32_t> value = greedy_value(model, pattern, samples[i]);
    std::copy(value.begin(), value.end(), samples[i].tokens.end() - L);
  }
  // One more: the greedy value with its last token changed, so only the last position misses.
  RecallSample off = samples[0];
  off.tokens.back() = (off.tokens.back() + 1) % int32_t(kVocab);
  samples.push_back(off);

  const std::vector<RecallScore> one = score_recall(model, pattern, samples, 1);
  const std::vector<RecallScore> batched = score_recall(model, pattern, samples, 4);
  ASSERT_EQ(batched.size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const double expected = reference_logprob(model, pattern, samples[i]);
    EXPECT_NEAR(batched[i].logprob, expected, 1e-4 * std::abs(expected)) << "sample " << i;
    EXPECT_NEAR(one[i].logprob, expected, 1e-4 * std::abs(expected)) << "sample " << i;
    const std::vector<int32_t> value(samples[i].tokens.end() - L, samples[i].tokens.end());
    const bool greedy_match = greedy_value(model, pattern, samples[i]) == value;
    EXPECT_EQ(batched[i].exact, greedy_match) << "sample " << i;
    EXPECT_EQ(one[i].exact, greedy_match) << "sample " << i;
    if (i % 2 == 0 && i + 1 < samples.size()) {
      EXPECT_TRUE(batched[i].exact) << "sample " << i;
    }
  }
  EXPECT_FALSE(batched.back().exact);
}

INSTANTIATE_TEST_SUITE_P(Patterns, RecallScoring,
                         ::testing::Values("dense", "dilated:D=4,W=2,P=1", "local:W=5",
                                           "layers=dense|dilated:D=8"));

TEST(RecallResults, PerDepthFractionsAndMeansPerToken) {
  const RecallLayout layout{20, {0.3, 0.6}, 2, 0};
  std::vector<RecallSample> samples(4);
  for (size_t i = 0; i < 4; ++i) samples[i].depth = i / 2;
  const std::vector<RecallScore> scores{{true, -2.0}, {false, -6.0}, {false, -1.0}, {false, -3.0}};
  const std::vector<RecallResult> r = recall_results("dense", layout, samples, scores);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].pattern, "dense");
  EXPECT_EQ(r[0].depth, 0.3);
  EXPECT_EQ(r[0].n, 2);
  EXPECT_DOUBLE_EQ(r[0].exact_match, 0.5);
  EXPECT_DOUBLE_EQ(r[0].value_logprob, -8.0 / double(2 * L));
  EXPECT_EQ(r[1].depth, 0.6);
  EXPECT_DOUBLE_EQ(r[1].exact_match, 0.0);
  EXPECT_DOUBLE_EQ(r[1].value_logprob, -4.0 / double(2 * L));
}

}  // namespace
}  // namespace ratplus
