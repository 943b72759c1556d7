// Multiple-choice scoring (`eval --task choice`): the batched log-likelihoods against the full forward's
// loss of one candidate at a time (a second path through the cross-entropy), with contexts cut to the
// window; acc and acc_norm and their ties on constructed scores; reading questions from JSONL; and text
// questions through a SentencePiece model trained by spm_train.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/temp_dir.h"
#include "inference/choice_task.h"
#include "model_test_util.h"
#include "test_util.h"

namespace ratplus {
namespace {

constexpr int64_t kVocab = 13;

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Questions of random ids: contexts of 1–12 tokens, 2–4 endings of 1–5 tokens, a random label.
std::vector<ChoiceQuestion> random_questions(int count, uint64_t seed) {
  uint64_t draw = 0;
  const auto next = [&](int64_t n) { return int64_t(splitmix64(seed + ++draw) % uint64_t(n)); };
  std::vector<ChoiceQuestion> questions(static_cast<size_t>(count));
  for (ChoiceQuestion& q : questions) {
    q.where = "test";
    for (int64_t t = 0, n = 1 + next(12); t < n; ++t) q.context.push_back(int32_t(next(kVocab)));
    for (int64_t e = 0, n = 2 + next(3); e < n; ++e) {
      std::vector<int32_t> ending;
      for (int64_t t = 0, m = 1 + next(5); t < m; ++t) ending.push_back(int32_t(next(kVocab)));
      q.ending_lengths.push_back(double(ending.size()));
      q.endings.push_back(ending);
    }
    q.label = next(int64_t(q.endings.size()));
  }
  return questions;
}

// log p(ending | context) from the model's summed cross-entropy over one sequence: the last window + 1
// tokens of context + ending, with only the ending's tokens as labels.
double reference_log_likelihood(Model& model, const Pattern& pattern, const ChoiceQuestion& q, size_t e,
                                int64_t window) {
  std::vector<int32_t> all = q.context;
  all.insert(all.end(), q.endings[e].begin(), q.endings[e].end());
  if (int64_t(all.size()) > window + 1) all.erase(all.begin(), all.end() - (window + 1));
  const std::vector<int32_t> inputs(all.begin(), all.end() - 1);
  std::vector<int32_t> targets(inputs.size(), -1);
  const size_t first = all.size() - q.endings[e].size();  // index in `all` of the ending's first token
  for (size_t i = first; i < all.size(); ++i) targets[i - 1] = all[i];
  const LossSum loss = test::batch_loss(model, inputs.data(), targets.data(), 1, int64_t(inputs.size()), pattern);
  EXPECT_EQ(loss.count, int64_t(q.endings[e].size()));
  return -loss.sum;
}

class ChoiceScoring : public ::testing::TestWithParam<const char*> {};

TEST_P(ChoiceScoring, BatchedLogLikelihoodsEqualOneCandidateAtATime) {
  Model model(test::tiny_model_config(kVocab, true, false), Device::cpu, DType::f32);
  model.init_parameters(5);
  const Pattern pattern = Pattern::parse(GetParam());
  const std::vector<ChoiceQuestion> questions = random_questions(9, 17);
  for (const int64_t window : {64, 7}) {  // 7 cuts most contexts from the left
    for (const ChoiceBatching batching : {ChoiceBatching{window, 1, 4096}, ChoiceBatching{window, 5, 8}}) {
      const std::vector<std::vector<double>> ll = ending_log_likelihoods(model, pattern, questions, batching);
      ASSERT_EQ(ll.size(), questions.size());
      for (size_t q = 0; q < questions.size(); ++q) {
        ASSERT_EQ(ll[q].size(), questions[q].endings.size());
        for (size_t e = 0; e < ll[q].size(); ++e) {
          const double expected = reference_log_likelihood(model, pattern, questions[q], e, window);
          EXPECT_LT(ll[q][e], 0.0);
          EXPECT_NEAR(ll[q][e], expected, 1e-4 * std::abs(expected))
              << "question " << q << " ending " << e << " window " << window << " batch " << batching.sequences;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Patterns, ChoiceScoring, ::testing::Values("dense", "dilated:D=3,W=1,P=1", "local:W=2",
                                                              "heads=1:dense+1:topk:B=2,K=1,score=moba"));

TEST(ChoiceScoring, TheAccuracyFollowsTheReferenceChoices) {
  Model model(test::tiny_model_config(kVocab, true, true), Device::cpu, DType::f32);
  model.init_parameters(8);
  const Pattern dense = Pattern::dense();
  const std::vector<ChoiceQuestion> questions = random_questions(30, 23);
  const std::vector<std::vector<double>> ll = ending_log_likelihoods(model, dense, questions, {64, 6});
  int right = 0, right_norm = 0;
  for (const ChoiceQuestion& q : questions) {
    size_t best = 0, best_norm = 0;
    double top = -1e300, top_norm = -1e300;
    for (size_t e = 0; e < q.endings.size(); ++e) {
      const double l = reference_log_likelihood(model, dense, q, e, 64);
      if (l > top) top = l, best = e;
      if (l / double(q.endings[e].size()) > top_norm) top_norm = l / double(q.endings[e].size()), best_norm = e;
    }
    right += int64_t(best) == q.label;
    right_norm += int64_t(best_norm) == q.label;
  }
  const ChoiceResult r = choice_result("dense", questions, ll);
  EXPECT_EQ(r.n, 30);
  EXPECT_DOUBLE_EQ(r.acc, right / 30.0);
  EXPECT_DOUBLE_EQ(r.acc_norm, right_norm / 30.0);
  EXPECT_NEAR(r.acc_stderr, std::sqrt(r.acc * (1 - r.acc) / 29), 1e-12);
}

TEST(ChoiceScoring, EndingsLongerThanTheWindowAreRefused) {
  std::vector<ChoiceQuestion> questions = random_questions(1, 3);
  questions[0].where = "q.jsonl:4";
  questions[0].endings[1].assign(9, 1);
  test::expect_input_error([&] { check_choice_window(questions, 8); },
                           {"q.jsonl:4", "ending 1 has 9 tokens", "window of 8"});
  EXPECT_NO_THROW(check_choice_window(questions, 9));
}

// Two endings: the first more likely in total, the second per byte.
ChoiceQuestion two_endings(int64_t label, double bytes0, double bytes1) {
  ChoiceQuestion q;
  q.context = {1};
  q.endings = {{2}, {3}};
  q.ending_lengths = {bytes0, bytes1};
  q.label = label;
  return q;
}

TEST(ChoiceMetrics, AccAndAccNormDifferWhenLengthsDo) {
  // Log-likelihoods −6 over 2 bytes (−3 per byte) and −8 over 4 bytes (−2 per byte).
  const std::vector<ChoiceQuestion> questions = {two_endings(1, 2, 4), two_endings(0, 2, 4)};
  const std::vector<std::vector<double>> ll = {{-6, -8}, {-6, -8}};
  const ChoiceResult r = choice_result("p", questions, ll);
  EXPECT_EQ(r.n, 2);
  EXPECT_DOUBLE_EQ(r.acc, 0.5);       // ending 0 both times: right for the second question only
  EXPECT_DOUBLE_EQ(r.acc_norm, 0.5);  // ending 1 both times: right for the first question only
  EXPECT_DOUBLE_EQ(r.acc_stderr, 0.5);
  const ChoiceResult first = choice_result("p", {questions[0]}, {ll[0]});
  EXPECT_DOUBLE_EQ(first.acc, 0.0);
  EXPECT_DOUBLE_EQ(first.acc_norm, 1.0);
  EXPECT_DOUBLE_EQ(first.acc_stderr, 0.0);  // one question
}

TEST(ChoiceMetrics, TiesGoToTheLowestIndex) {
  EXPECT_EQ(best_choice(std::vector<double>{-2, -1, -1}), 1);
  EXPECT_EQ(best_choice(std::vector<double>{-1, -1}), 0);
  EXPECT_EQ(best_choice(std::vector<double>{-5}), 0);
  // Equal per-byte scores: acc_norm takes ending 0, the label here.
  EXPECT_DOUBLE_EQ(choice_result("p", {two_endings(0, 2, 4)}, {{-4, -8}}).acc_norm, 1.0);
  EXPECT_DOUBLE_EQ(choice_result("p", {two_endings(1, 2, 4)}, {{-4, -8}}).acc_norm, 0.0);
}

TEST(ChoiceData, TokenLinesAreReadWithTheirLineNumbers) {
  TempDir dir;
  write_file(dir.file("q.jsonl"),
             R"({"context_tokens": [1, 5], "endings_tokens": [[2], [3, 4, 6]], "label": 1})"
             "\n\n   \n"
             R"({"context_tokens": [7], "endings_tokens": [[8, 9]], "label": 0})"
             "\n");
  const std::vector<ChoiceQuestion> q = read_choice_questions(dir.file("q.jsonl"), nullptr, 10);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].context, (std::vector<int32_t>{1, 5}));
  EXPECT_EQ(q[0].endings, (std::vector<std::vector<int32_t>>{{2}, {3, 4, 6}}));
  EXPECT_EQ(q[0].ending_lengths, (std::vector<double>{1, 3}));
  EXPECT_EQ(q[0].label, 1);
  EXPECT_EQ(q[1].where, dir.file("q.jsonl") + ":4");
}

TEST(ChoiceData, BadLinesAreRefusedNamingFileAndLine) {
  TempDir dir;
  const std::string good = R"({"context_tokens": [1], "endings_tokens": [[2], [3]], "label": 0})";
  const auto refused = [&](const std::string& line, const std::string& fragment) {
    write_file(dir.file("q.jsonl"), good + "\n" + line + "\n");
    test::expect_input_error([&] { read_choice_questions(dir.file("q.jsonl"), nullptr, 10); },
                             {dir.file("q.jsonl") + ":2", fragment});
  };
  refused("{not json", "not valid JSON");
  refused("{\"context_tokens\": [1], \"endings_tokens\": [[3]], \"label\": 22222e2222}", "not valid JSON");
  refused("[1, 2]", "not a JSON object");
  refused(R"({"endings_tokens": [[2]], "label": 0})", "no \"context\" or \"context_tokens\"");
  refused(R"({"context_tokens": [1], "label": 0})", "no \"endings_tokens\"");
  refused(R"({"context_tokens": [1], "endings_tokens": [[2]]})", "no \"label\"");
  refused(R"({"context_tokens": [1], "endings_tokens": [[2], [3]], "label": 2})", "\"label\" 2");
  refused(R"({"context_tokens": [1], "endings_tokens": [[2], [3]], "label": -1})", "\"label\" -1");
  refused(R"({"context_tokens": [1], "endings_tokens": [[2], [3]], "label": "0"})", "not an integer");
  refused(R"({"context_tokens": [1], "endings_tokens": [], "label": 0})", "\"endings_tokens\" is empty");
  refused(R"({"context_tokens": [1], "endings_tokens": [[2], []], "label": 0})", "\"endings_tokens\"[1] is empty");
  refused(R"({"context_tokens": [], "endings_tokens": [[2]], "label": 0})", "\"context_tokens\" is empty");
  refused(R"({"context_tokens": [1], "endings_tokens": [[2], [10]], "label": 0})", "token 10, outside");
  refused(R"({"context_tokens": [-1], "endings_tokens": [[2]], "label": 0})", "token -1, outside");
  refused(R"({"context_tokens": [1.5], "endings_tokens": [[2]], "label": 0})", "not a token id");
  refused(R"({"context": "a", "endings": ["b"], "label": 0})", "needs --tokenizer");
  write_file(dir.file("empty.jsonl"), "\n \n");
  test::expect_input_error([&] { read_choice_questions(dir.file("empty.jsonl"), nullptr, 10); }, {"no question"});
  test::expect_input_error([&] { read_choice_questions(dir.file("none.jsonl"), nullptr, 10); }, {"none.jsonl"});
}

#ifdef RATPLUS_HAVE_SENTENCEPIECE

// A SentencePiece model trained by spm_train on generated sentences (skips when the program is missing).
class TextChoice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v spm_train >/dev/null 2>&1") != 0) GTEST_SKIP() << "spm_train not installed";
    const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "away"};
    std::string corpus;
    for (uint64_t i = 0; i < 300; ++i) {
      for (uint64_t w = 0; w < 3 + i % 6; ++w) corpus += std::string(w ? " " : "") + words[splitmix64(i * 16 + w) % 10];
      corpus += "\n";
    }
    write_file(dir_.file("corpus.txt"), corpus);
    const std::string train = "spm_train --input=" + dir_.file("corpus.txt") + " --model_prefix=" + dir_.file("sp") +
                              " --vocab_size=30 --hard_vocab_limit=false --model_type=unigram --character_coverage=1.0 >/dev/null 2>&1";
    ASSERT_EQ(std::system(train.c_str()), 0);
  }
  TempDir dir_;
};

TEST_F(TextChoice, TheEndingIsTheTailOfTheWholeTextAfterTheContextsIds) {
  const Tokenizer tokenizer(dir_.file("sp.model"));
  ASSERT_GE(tokenizer.bos_id(), 0);
  for (const auto& [context, ending] : std::vector<std::pair<std::string, std::string>>{
           {"the cat sat on", "a mat"}, {"the cat", "ran away and then sat"}}) {
    const TextChoiceIds ids = text_choice_ids(tokenizer, context, ending);
    EXPECT_EQ(ids.context, tokenizer.encode(context, true));
    std::vector<int32_t> joined(ids.context.begin() + 1, ids.context.end());
    joined.insert(joined.end(), ids.ending.begin(), ids.ending.end());
    EXPECT_EQ(joined, tokenizer.encode(context + " " + ending, false)) << context;
    EXPECT_EQ(tokenizer.decode(joined), context + " " + ending) << context;
  }
  // A context's trailing whitespace goes with the ending: the context's ids are those of its text without it.
  const TextChoiceIds spaced = text_choice_ids(tokenizer, "then the cat ran  \n", "away");
  EXPECT_EQ(spaced.context, tokenizer.encode("then the cat ran", true));
  const std::vector<int32_t> whole = tokenizer.encode("then the cat ran  \n away", false);
  EXPECT_EQ(spaced.ending, std::vector<int32_t>(whole.begin() + ptrdiff_t(spaced.context.size() - 1), whole.end()));
  // Without a context the ending is the text alone, after BOS.
  const TextChoiceIds alone = text_choice_ids(tokenizer, "", "the mat");
  EXPECT_EQ(alone.context, std::vector<int32_t>{tokenizer.bos_id()});
  EXPECT_EQ(alone.ending, tokenizer.encode("the mat", false));
}

TEST_F(TextChoice, TextLinesNormaliseByUtf8Bytes) {
  const Tokenizer tokenizer(dir_.file("sp.model"));
  write_file(dir_.file("q.jsonl"), R"({"context": "the cat", "endings": ["sat", "ran away", "mat\u00e9"], "label": 2})"
                                   "\n");
  const std::vector<ChoiceQuestion> q = read_choice_questions(dir_.file("q.jsonl"), &tokenizer, 64);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].ending_lengths, (std::vector<double>{3, 8, 5}));  // é is two bytes
  EXPECT_EQ(q[0].context, tokenizer.encode("the cat", true));
  EXPECT_EQ(q[0].endings[1], text_choice_ids(tokenizer, "the cat", "ran away").ending);
  test::expect_input_error([&] { read_choice_questions(dir_.file("q.jsonl"), &tokenizer, 5); },
                           {dir_.file("q.jsonl") + ":1", "outside the model's vocabulary of 5"});
}

#endif

}  // namespace
}  // namespace ratplus
