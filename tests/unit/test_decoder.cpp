// Decoding is the full forward pass in pieces: for every kind of pattern, prefill(n) and k steps give the
// logits of one forward over the n + k tokens at those positions, for sequences of different lengths in one
// batch, with prompt lengths on both sides of D, W and the ring's size. The compact cache holds P + ⌊T/D⌋ +
// W + 1 slots, and its slots are where the layout says. Top-k block patterns (SPEC §6) decode from the block
// summaries kept beside a full cache and give the full forward's logits too, whatever B, K, W, P, D.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "inference/decoder.h"
#include "kernels/attention.h"
#include "inference/key_cache.h"
#include "kernels/cache_append.h"
#include "model_test_util.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

constexpr int64_t kVocab = 29;

ModelConfig decode_config(bool recurrence, bool tied) { return tiny_model_config(kVocab, recurrence, tied); }

std::vector<int32_t> tokens_of(int64_t n, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(splitmix64(seed * 1000 + i) % kVocab);
  return t;
}

class Decoding : public ::testing::TestWithParam<ModelCase> {};

TEST_P(Decoding, PrefillAndStepsGiveTheFullForwardLogits) {
  const ModelCase& c = GetParam();
  Model model(decode_config(c.recurrence, c.tied), Device::cpu, DType::f64);
  model.init_parameters(12);
  const Pattern pattern = Pattern::parse(c.pattern);
  const std::vector<int64_t> prompts = {1, 4, 5, 9};  // around D = 4 and 5, W = 3 and the ring of W + 1
  const int64_t steps = 14, batch = static_cast<int64_t>(prompts.size()), max_len = 9 + steps;
  std::vector<std::vector<int32_t>> sequences;
  for (int64_t b = 0; b < batch; ++b) sequences.push_back(tokens_of(prompts[b] + steps, b + 1));

  // The reference: one forward over each whole sequence, the logits of every row.
  std::vector<Owned> full;
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = static_cast<int64_t>(sequences[b].size());
    std::vector<int64_t> rows(n);
    for (int64_t r = 0; r < n; ++r) rows[r] = r;
    full.emplace_back(n, kVocab);
    model.forward({sequences[b].data(), 1, n, pattern}, LogitsOutput{rows, full.back()});
  }

  Decoder decoder(model, pattern, batch, max_len);
  for (int64_t b = 0; b < batch; ++b) {
    Owned logits(1, kVocab);
    decoder.prefill(b, std::span(sequences[b]).first(prompts[b]), logits);
    for (int64_t v = 0; v < kVocab; ++v)
      ASSERT_NEAR(get(logits, 0, v), get(full[b], prompts[b] - 1, v), 1e-10) << "prefill of sequence " << b;
  }
  Owned logits(batch, kVocab);
  for (int64_t k = 0; k < steps; ++k) {
    std::vector<int32_t> next(batch);
    for (int64_t b = 0; b < batch; ++b) next[b] = sequences[b][prompts[b] + k];
    decoder.step(next, logits);
    for (int64_t b = 0; b < batch; ++b) {
      ASSERT_EQ(decoder.length(b), prompts[b] + k + 1);
      for (int64_t v = 0; v < kVocab; ++v)
        ASSERT_NEAR(get(logits, b, v), get(full[b], prompts[b] + k, v), 1e-10)
            << "step " << k << " of sequence " << b << ", logit " << v;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, Decoding,
    ::testing::Values(ModelCase{"dense", true, true, "dense"},
                      ModelCase{"dilated", true, true, "dilated:D=4"},
                      ModelCase{"dilated_window_sinks_untied", true, false, "dilated:D=5,W=3,P=2"},
                      ModelCase{"local_sinks", true, true, "local:W=3,P=1"},
                      ModelCase{"per_layer", true, true, "layers=dense|dilated:D=4,W=3"},
                      ModelCase{"per_head", true, true, "heads=1:dilated:D=5,P=3+1:local:W=3"},
                      ModelCase{"attention_only_dense", false, true, "dense"},
                      ModelCase{"attention_only_hybrid_untied", false, false, "layers=local:W=3|heads=1:dense+1:dilated:D=4"},
                      ModelCase{"topk_quest", true, true, "topk:B=3,K=2"},
                      ModelCase{"topk_moba_untied", true, false, "topk:B=4,K=1,score=moba"},
                      ModelCase{"topk_block_of_one", true, true, "topk:B=1,K=3"},
                      ModelCase{"topk_more_k_than_blocks", true, true, "topk:B=5,K=9"},
                      ModelCase{"topk_window_sinks_dilation", true, true, "topk:B=3,K=1,W=2,P=1,D=4"},
                      ModelCase{"topk_zero_k_moba", true, true, "topk:B=4,K=0,W=1,score=moba"},
                      ModelCase{"topk_per_layer", true, true, "layers=dilated:D=4,W=3|topk:B=2,K=2,score=moba"},
                      ModelCase{"topk_per_head", true, true, "heads=1:dense+1:topk:B=3,K=2,P=2"},
                      ModelCase{"attention_only_topk_hybrid", false, true,
                                "layers=heads=1:topk:B=2,K=1+1:local:W=3|topk:B=3,K=2,D=5"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CacheLayout, HoldsSinksDilatedPositionsAndARing) {
  const int64_t T = 1000;
  EXPECT_EQ(CacheLayout({1, 0, 0}, T).capacity(), T);  // dense keeps every position
  EXPECT_EQ(CacheLayout({16, 0, 0}, T).capacity(), 62 + 1);  // ⌊1000/16⌋ dilated + the current position
  EXPECT_EQ(CacheLayout({16, 256, 4}, T).capacity(), 4 + 62 + 257);
  EXPECT_EQ(CacheLayout({0, 64, 4}, T).capacity(), 4 + 65);
  // Every slot a key set can still need at once is distinct: over a whole sequence, the positions in any
  // query's key set never share a slot.
  for (const KeySet s : {KeySet{16, 0, 0}, KeySet{5, 3, 2}, KeySet{0, 7, 3}, KeySet{1, 0, 0}, KeySet{4, 50, 9}}) {
    const CacheLayout layout(s, 300);
    for (int64_t t = 0; t < 300; ++t) {
      std::vector<int> used(layout.capacity(), 0);
      for_each_key(s, t, [&](int64_t j) {
        const int64_t slot = layout.slot(j);
        ASSERT_GE(slot, 0);
        ASSERT_LT(slot, layout.capacity());
        ASSERT_EQ(used[slot]++, 0) << "D " << s.dilation << " W " << s.window << " P " << s.sinks << ": query " << t
                                   << " needs two keys in slot " << slot;
      });
    }
  }
}

// A prompt's block copies put every position a later query can reach into its slot, and the slots said to hold
// a position hold the one the copies wrote there.
TEST(CacheLayout, PromptRunsFillTheSlotsOfEveryReachablePosition) {
  for (const KeySet s : {KeySet{1, 0, 0}, KeySet{16, 0, 0}, KeySet{5, 3, 2}, KeySet{0, 7, 3}, KeySet{4, 50, 9},
                         KeySet{3, 0, 4}, KeySet{7, 2, 0}}) {
    const int64_t max_len = 120;
    const CacheLayout layout(s, max_len);
    for (int64_t n = 1; n <= max_len; ++n) {
      std::vector<int64_t> copied(layout.capacity(), -1);
      for (const CacheLayout::Run& r : layout.prompt_runs(n))
        for (int64_t i = 0; i < r.count; ++i) {
          ASSERT_LT(r.position + i * r.step, n);
          copied[r.slot + i] = r.position + i * r.step;
        }
      const std::string where = "D " + std::to_string(s.dilation) + " W " + std::to_string(s.window) + " P " +
                                std::to_string(s.sinks) + ", n " + std::to_string(n);
      for (int64_t slot = 0; slot < layout.capacity(); ++slot) {
        const int64_t held = layout.position_after_prompt(slot, n);
        if (held >= 0) {
          ASSERT_EQ(copied[slot], held) << where << ", slot " << slot;
        }
      }
      // Every key that a query at position n − 1 or later may attend to is held in its slot.
      for (int64_t j = 0; j < n; ++j) {
        bool reachable = false;
        for (int64_t t = n - 1; t < max_len && !reachable; ++t) reachable = in_key_set(s, t, j);
        if (reachable) {
          ASSERT_EQ(layout.position_after_prompt(layout.slot(j), n), j) << where << ", position " << j;
        }
      }
    }
  }
}

TEST(Decoding, ADilatedCacheIsASixteenthOfDense) {
  ModelConfig config = decode_config(true, true);
  Model model(config, Device::cpu, DType::f32);
  const Decoder dense(model, Pattern::dense(), 1, 1024), sparse(model, Pattern::dilated(16), 1, 1024);
  const double ratio = static_cast<double>(sparse.cache_bytes_per_sequence()) / dense.cache_bytes_per_sequence();
  EXPECT_NEAR(ratio, 1.0 / 16, 0.01);
}

// Counted from the definitions for the two-layer, two-head model of width 16 (heads of 8, f32, RAT+): a top-k
// step at 40 positions under topk:B=4,K=2,W=3 reads 10 complete blocks' quest summaries (2·8 values per block
// and head) and (2 + 1)·4 + 3 = 15 keys and values, while its cache holds all 40 with their positions; other
// patterns read what they hold.
TEST(Decoding, ATopKStepReadsItsSummariesAndChosenKeys) {
  Model model(decode_config(true, true), Device::cpu, DType::f32);
  const size_t layers = 2, heads = 2, dh = 8, f32 = 4, state = layers * 2 * heads * dh * f32;
  const size_t key_and_value = heads * 2 * dh * f32, summaries = 10 * heads * 2 * dh * f32;
  const Pattern topk = Pattern::parse("topk:B=4,K=2,W=3"), dilated = Pattern::dilated(4, 3);
  EXPECT_EQ(cache_bytes_read_per_step(model, topk, 40), layers * (15 * key_and_value + summaries) + state);
  EXPECT_EQ(cache_bytes_per_sequence(model, topk, 40), layers * (40 * (key_and_value + 4) + summaries) + state);
  EXPECT_EQ(cache_bytes_read_per_step(model, dilated, 40), cache_bytes_per_sequence(model, dilated, 40));
}

TEST(Decoding, BadRequestsAreRefused) {
  Model model(decode_config(true, true), Device::cpu, DType::f32);
  Decoder decoder(model, Pattern::dense(), 2, 8);
  Owned logits(1, kVocab, DType::f32), both(2, kVocab, DType::f32);
  const std::vector<int32_t> empty, outside = {3, kVocab}, long_prompt(9, 1), fine = {1, 2};
  expect_input_error([&] { decoder.prefill(0, empty, logits); }, {"prompt of 0 tokens"});
  expect_input_error([&] { decoder.prefill(0, outside, logits); }, {"prompt token 29 at offset 1", "vocabulary"});
  expect_input_error([&] { decoder.prefill(0, long_prompt, logits); }, {"prompt of 9 tokens", "1 to 8"});
  expect_input_error([&] { decoder.prefill(2, fine, logits); }, {"sequence 2", "batch of 2"});
  decoder.prefill(0, fine, logits);
  expect_input_error([&] { decoder.step(std::vector<int32_t>{1, 1}, both); }, {"sequence 1 holds 0 positions"});
  expect_input_error([&] { decoder.step(std::vector<int32_t>{1}, both); }, {"1 tokens for a batch of 2"});
  expect_input_error([&] { Decoder(model, Pattern::parse("layers=dense*3"), 1, 8); }, {"layers"});
}

// The 8-bit grid on values whose scale is a power of two, so every quotient is exact: each head's own scale,
// its integers with ties to even, a zero head all zero; the second row twice the first has twice the scales
// and the same integers.
TEST(Int8Cache, QuantizesEachHeadOnItsGrid) {
  for (const DType dtype : {DType::f32, DType::f64}) {
    const std::vector<double> row = {127, -63.5, 0.5, 1.5, 2.5, 3.2, 0, 0, 0, 0, 0, 0, 254, 5, -3, 1, 0, 7};
    const std::vector<int> integers = {127, -64, 0, 2, 2, 3, 0, 0, 0, 0, 0, 0, 127, 2, -2, 0, 0, 4};
    const std::vector<double> scales = {1, 0, 2};
    Owned x(2, 18, dtype), q(2, 18, DType::i8), s(3, 2, dtype);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t c = 0; c < 18; ++c) set(x, r, c, (r + 1) * row[c]);
    quantize_to_int8(q, s, x, 6);
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t c = 0; c < 18; ++c)
        EXPECT_EQ(q.t.ptr<int8_t>()[r * 18 + c], integers[c]) << "row " << r << " column " << c;
      for (int64_t h = 0; h < 3; ++h) EXPECT_EQ(get(s, h, r), (r + 1) * scales[h]) << "row " << r << " head " << h;
    }
  }
}

TEST(Int8Cache, QuantizeRefusesMismatchedShapes) {
  Owned x(2, 12, DType::f32), q(2, 12, DType::i8), s(2, 2, DType::f32);
  Owned wrong_q(2, 12, DType::f32), wrong_s(2, 3, DType::f32);
  EXPECT_THROW(quantize_to_int8(wrong_q, s, x, 6), std::logic_error);
  EXPECT_THROW(quantize_to_int8(q, wrong_s, x, 6), std::logic_error);
  EXPECT_THROW(quantize_to_int8(q, s, x, 5), std::logic_error);
}

// With an 8-bit cache the prefill's logits are the full forward's (it reads no cache) and every step's stay
// within the grid's error of the exact cache's — and differ from them, the cache being rounded.
TEST_P(Decoding, AnInt8CacheStaysCloseToTheExactOne) {
  const ModelCase& c = GetParam();
  const Pattern pattern = Pattern::parse(c.pattern);
  if (pattern.has_top_k()) GTEST_SKIP() << "an 8-bit cache holds no top-k block summaries";
  Model model(decode_config(c.recurrence, c.tied), Device::cpu, DType::f64);
  model.init_parameters(12);
  const std::vector<int64_t> prompts = {1, 5, 9};
  const int64_t steps = 10, batch = static_cast<int64_t>(prompts.size());
  Decoder exact(model, pattern, batch, 9 + steps), int8(model, pattern, batch, 9 + steps, CachePrecision::int8);
  Owned a(1, kVocab), b(1, kVocab), all_a(batch, kVocab), all_b(batch, kVocab);
  for (int64_t s = 0; s < batch; ++s) {
    const std::vector<int32_t> prompt = tokens_of(prompts[s], s + 1);
    exact.prefill(s, prompt, a);
    int8.prefill(s, prompt, b);
    for (int64_t v = 0; v < kVocab; ++v) ASSERT_EQ(get(a, 0, v), get(b, 0, v)) << "prefill of sequence " << s;
  }
  double largest = 0, differs = 0;
  for (int64_t k = 0; k < steps; ++k) {
    const std::vector<int32_t> next = tokens_of(batch, 100 + k);
    exact.step(next, all_a);
    int8.step(next, all_b);
    for (int64_t s = 0; s < batch; ++s)
      for (int64_t v = 0; v < kVocab; ++v) {
        largest = std::max(largest, std::abs(get(all_a, s, v)));
        differs = std::max(differs, std::abs(get(all_a, s, v) - get(all_b, s, v)));
      }
  }
  EXPECT_GT(differs, 1e-9) << "the 8-bit cache should round";
  EXPECT_LT(differs, 0.02 * largest) << "the 8-bit cache should stay within its grid's error";
}

// The head widths the GPU's cache attention takes (which the decoder checks before it allocates): 16-byte
// lanes, a power of two of them from 1 to 32, at most 256 channels.
TEST(Decoding, GpuHeadWidthsAreSixteenByteLanes) {
  for (const auto& [dh, type, takes] :
       {std::tuple{8, DType::bf16, true}, {8, DType::i8, false}, {16, DType::i8, true}, {40, DType::bf16, false},
        {48, DType::i8, false}, {128, DType::f32, true}, {256, DType::f32, false}, {256, DType::bf16, true},
        {256, DType::i8, true}, {512, DType::i8, false}, {4, DType::f32, true}})
    EXPECT_EQ(gpu_cache_attention_takes(dh, type), takes) << dh << " channels of " << dtype_name(type);
}

TEST(Int8Cache, TopKPatternsAreRefused) {
  Model model(decode_config(true, true), Device::cpu, DType::f32);
  expect_input_error([&] { Decoder(model, Pattern::parse("topk:B=4,K=1"), 1, 8, CachePrecision::int8); },
                     {"8-bit cache", "top-k"});
}

}  // namespace
}  // namespace ratplus::test
