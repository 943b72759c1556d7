// The model's interface as inference and training use it: logits of chosen rows agree with the chunked loss,
// an evaluation model plans no training state (a 7.6B evaluation fits in 20 GB), the backward follows only a
// training forward, and the trainer's optimizer plans what the model no longer holds.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/model.h"
#include "model_test_util.h"
#include "test_util.h"
#include "trainer/optimizer.h"

namespace ratplus::test {
namespace {

ModelConfig small_config(bool recurrence, bool tied) { return tiny_model_config(37, recurrence, tied); }

struct Batch {
  int64_t batch = 3, seq = 11;
  std::vector<int32_t> inputs, targets;
  Batch() : inputs(batch * seq), targets(batch * seq) {
    for (int64_t i = 0; i < batch * seq; ++i) {
      inputs[i] = static_cast<int32_t>(splitmix64(i) % 37);
      targets[i] = i % 7 == 2 ? -1 : static_cast<int32_t>(splitmix64(i + 50) % 37);
    }
  }
};

// Cross-entropy of one row of logits, computed naively.
double row_cross_entropy(const Tensor& logits, int64_t row, int32_t target) {
  double max = -INFINITY, sum = 0;
  for (int64_t c = 0; c < logits.cols; ++c) max = std::max(max, get(logits, row, c));
  for (int64_t c = 0; c < logits.cols; ++c) sum += std::exp(get(logits, row, c) - max);
  return max + std::log(sum) - get(logits, row, target);
}

TEST(Model, LogitsOfEveryRowGiveTheChunkedLoss) {
  for (const bool recurrence : {true, false}) {
    for (const bool tied : {true, false}) {
      Model model(small_config(recurrence, tied), Device::cpu, DType::f64);
      model.init_parameters(11);
      const Batch b;
      const Pattern pattern = Pattern::parse("heads=1:dense+1:dilated:D=3,W=2,P=1");
      const LossSum loss = batch_loss(model, b.inputs.data(), b.targets.data(), b.batch, b.seq, pattern);
      std::vector<int64_t> rows(b.batch * b.seq);
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
      Owned logits(b.batch * b.seq, 37);
      model.forward({b.inputs.data(), b.batch, b.seq, pattern}, LogitsOutput{rows, logits});
      double sum = 0;
      int64_t count = 0;
      for (int64_t r = 0; r < b.batch * b.seq; ++r) {
        if (b.targets[r] < 0) continue;
        sum += row_cross_entropy(logits, r, b.targets[r]);
        ++count;
      }
      EXPECT_EQ(count, loss.count);
      EXPECT_NEAR(sum, loss.sum, 1e-10 * std::abs(loss.sum)) << "recurrence " << recurrence << " tied " << tied;
    }
  }
}

TEST(Model, LogitsOfChosenRowsAreThoseRowsOfTheFullLogits) {
  Model model(small_config(true, true), Device::cpu, DType::f64);
  model.init_parameters(4);
  const Batch b;
  const Pattern pattern = Pattern::dense();
  std::vector<int64_t> all(b.batch * b.seq);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  Owned full(b.batch * b.seq, 37);
  model.forward({b.inputs.data(), b.batch, b.seq, pattern}, LogitsOutput{all, full});
  // The last row of each sequence (what a prefill wants), a run, and rows out of order.
  const std::vector<int64_t> chosen = {10, 21, 32, 3, 4, 5, 0, 17};
  Owned some(static_cast<int64_t>(chosen.size()), 37);
  model.forward({b.inputs.data(), b.batch, b.seq, pattern}, LogitsOutput{chosen, some});
  // Equal up to rounding: OpenBLAS picks its dgemm kernel by the number of rows, and on some CPUs the
  // 8-row product sums in another order than the 33-row one (a last-bit difference); other rows differ by far more.
  for (size_t i = 0; i < chosen.size(); ++i)
    for (int64_t c = 0; c < 37; ++c)
      ASSERT_NEAR(get(some, static_cast<int64_t>(i), c), get(full, chosen[i], c), 1e-13) << "row " << chosen[i];
}

// The logits of rows [first, first + n) of each sequence, [batch · n, V].
std::vector<int64_t> rows_of_each_sequence(int64_t batch, int64_t seq, int64_t first, int64_t n) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = first; t < first + n; ++t) rows.push_back(b * seq + t);
  return rows;
}

// A sequence run in two forwards, the recurrent state of the first handed to the second, gives the logits of
// one forward over the whole. Attention sees only the keys of its own forward, so the pattern is local:W=0
// (each token attends to itself alone; RoPE then cancels): everything that crosses the cut is the state.
TEST(Model, RecurrentStateCarriesASequenceAcrossForwards) {
  Model model(small_config(true, false), Device::cpu, DType::f64);
  model.init_parameters(8);
  const Batch b;
  const int64_t cut = 4, rest = b.seq - cut, width = model.config().d_model;
  const Pattern self = Pattern::parse("local:W=0");
  const std::vector<int64_t> tail_rows = rows_of_each_sequence(b.batch, b.seq, cut, rest);
  Owned whole(b.batch * rest, 37);
  model.forward({b.inputs.data(), b.batch, b.seq, self}, LogitsOutput{tail_rows, whole});

  std::vector<int32_t> head_tokens, tail_tokens;
  for (int64_t i = 0; i < b.batch; ++i) {
    head_tokens.insert(head_tokens.end(), b.inputs.begin() + i * b.seq, b.inputs.begin() + i * b.seq + cut);
    tail_tokens.insert(tail_tokens.end(), b.inputs.begin() + i * b.seq + cut, b.inputs.begin() + (i + 1) * b.seq);
  }
  std::vector<Owned> storage;
  for (int i = 0; i < 4; ++i) storage.emplace_back(b.batch, width);  // k, v of layers 0 and 1
  const std::vector<RecurrenceState> state = {{storage[0], storage[1]}, {storage[2], storage[3]}};
  model.forward({head_tokens.data(), b.batch, cut, self, {}, state}, std::monostate{});
  const std::vector<int64_t> all_rows = rows_of_each_sequence(b.batch, rest, 0, rest);
  Owned parts(b.batch * rest, 37);
  model.forward({tail_tokens.data(), b.batch, rest, self, state}, LogitsOutput{all_rows, parts});
  for (int64_t r = 0; r < b.batch * rest; ++r)
    for (int64_t c = 0; c < 37; ++c) ASSERT_NEAR(get(parts, r, c), get(whole, r, c), 1e-12) << "row " << r;

  // Without the state the second forward is a different computation.
  Owned cold(b.batch * rest, 37);
  model.forward({tail_tokens.data(), b.batch, rest, self}, LogitsOutput{all_rows, cold});
  EXPECT_GT(std::abs(get(cold, 0, 0) - get(whole, 0, 0)), 1e-6);
}

TEST(Model, RecurrentStatesNeedOneEntryPerLayerOfARatPlusModel) {
  Model attention_only(small_config(false, true), Device::cpu, DType::f64);
  const Batch b;
  Owned k(b.batch, 16), v(b.batch, 16);
  const std::vector<RecurrenceState> two = {{k, v}, {k, v}};
  expect_input_error([&] { attention_only.forward({b.inputs.data(), b.batch, b.seq, Pattern::dense(), {}, two}, {}); },
                     {"final recurrent state", "one entry per layer of a RAT+ model"});
  Model ratplus(small_config(true, true), Device::cpu, DType::f64);
  const std::span<const RecurrenceState> one(two.data(), 1);
  expect_input_error([&] { ratplus.forward({b.inputs.data(), b.batch, b.seq, Pattern::dense(), one}, {}); },
                     {"initial recurrent state"});
}

TEST(Model, LogitRowsOutsideTheBatchAreRefused) {
  Model model(small_config(true, true), Device::cpu, DType::f32);
  const Batch b;
  const std::vector<int64_t> rows = {b.batch * b.seq};
  Owned logits(1, 37, DType::f32);
  expect_input_error(
      [&] { model.forward({b.inputs.data(), b.batch, b.seq, Pattern::dense()}, LogitsOutput{rows, logits}); },
      {"logit row 33", "outside the 33 rows"});
}

TEST(Model, BackwardFollowsOnlyATrainingForward) {
  Model model(small_config(true, true), Device::cpu, DType::f32);
  model.init_parameters(1);
  const Batch b;
  const Gradients grads(model);
  batch_loss(model, b.inputs.data(), b.targets.data(), b.batch, b.seq, Pattern::dense());
  EXPECT_THROW(model.backward(grads), std::logic_error);
}

TEST(Model, AnEvaluationModelPlansNoTrainingState) {
  const auto configs = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "configs";
  const ModelConfig big = load_experiment_config((configs / "ratplus-7.6b.yaml").string()).model;
  const MemoryPlan plan = Model::memory_plan(big, DType::bf16, 1, 4096, false);
  for (const auto& [what, bytes] : plan.items) {
    EXPECT_EQ(what.find("gradient"), std::string::npos) << what;
    EXPECT_EQ(what.find("master"), std::string::npos) << what;
    EXPECT_EQ(what.find("moment"), std::string::npos) << what;
  }
  const double weights = 2.0 * static_cast<double>(big.parameter_count());
  EXPECT_NEAR(static_cast<double>(plan.items.at(0).second), weights, 1.0);
  EXPECT_LE(plan.total(), size_t{20} << 30) << "a 7.6B bf16 evaluation of 4096 tokens must fit in 20 GiB";
  // Training adds f32 master weights, f32 gradients and two f32 moments: 16 more bytes per parameter.
  const MemoryPlan optimizer = Optimizer::memory_plan(big, DType::bf16, 1, 1);
  EXPECT_NEAR(static_cast<double>(optimizer.total()), 16.0 * static_cast<double>(big.parameter_count()), 16.0);
}

}  // namespace
}  // namespace ratplus::test
