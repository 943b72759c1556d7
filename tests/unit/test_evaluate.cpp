// `eval --task loss --decode`: the loss of windows decoded teacher-forced (first token prefilled, one step per
// later token) equals the loss of the forward passes over the same windows, label for label, for every kind of
// pattern — with a last micro-batch of fewer windows than the decoder's batch, and end-of-document labels
// ignored.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "core/temp_dir.h"
#include "data/synthetic.h"
#include "inference/evaluate.h"
#include "model_test_util.h"
#include "test_util.h"

namespace ratplus {
namespace {

constexpr int64_t kVocab = 23, kSeqLen = 13, kWindows = 3, kEos = 5;

class DecodedEvaluation : public ::testing::TestWithParam<test::ModelCase> {};

TEST_P(DecodedEvaluation, EqualsTheForwardLoss) {
  const test::ModelCase& c = GetParam();
  TempDir dir("evaluate");
  std::vector<uint32_t> ids;
  for (int64_t i = 0; i < kWindows * kSeqLen + 1; ++i) ids.push_back(uint32_t(splitmix64(uint64_t(i) + 77) % kVocab));
  write_llmc_shard(dir.file("data.bin"), ids, 1);
  const TokenStream data({dir.file("data.bin")}, ShardFormat::llmc, kVocab);

  Model model(test::tiny_model_config(kVocab, c.recurrence, c.tied), Device::cpu, DType::f64);
  model.init_parameters(31);
  const std::vector<Pattern> patterns = {Pattern::parse(c.pattern)};
  const EvalOptions forward{kSeqLen, kWindows, kEos, 2, false};
  EvalOptions decoded = forward;
  decoded.decode = true;
  const EvalResult want = evaluate_patterns(model, data, forward, patterns).at(0);
  const EvalResult got = evaluate_patterns(model, data, decoded, patterns).at(0);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_LT(want.tokens, kWindows * kSeqLen) << "the data should hold end-of-document labels to ignore";
  EXPECT_NEAR(got.loss, want.loss, 1e-9);  // decoding gives the forward's logits to ~1e-10 (tests/unit/test_decoder.cpp)
  EXPECT_GT(want.loss, 0.5);
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, DecodedEvaluation,
    ::testing::Values(test::ModelCase{"dense", true, true, "dense"},
                      test::ModelCase{"dilated_window_sinks_untied", true, false, "dilated:D=5,W=3,P=2"},
                      test::ModelCase{"per_head", true, true, "heads=1:dilated:D=4,P=1+1:local:W=3"},
                      test::ModelCase{"attention_only_per_layer", false, true, "layers=dense|dilated:D=4,W=2"},
                      test::ModelCase{"topk", true, true, "topk:B=3,K=1,W=1"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace ratplus
