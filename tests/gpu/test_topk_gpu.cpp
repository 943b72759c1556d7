// Top-k block attention on the GPU (kernels/cuda/topk_attention.cu) against the CPU reference: quest and
// moba, T no multiple of B, K above the number of blocks, K = 0, B = 1, tied scores, per-head hybrids with
// dense and fixed-key-set heads, a chunk (q_pos0 > 0), head widths 128, 64 and 40. The GPU scores blocks as
// the CPU does to the bit, so both attend to the same keys: out and lse match to 1e-5 in f32, and to bf16
// accuracy with bf16 activations (inputs rounded to bf16, the CPU computing in f32 on the rounded values).
// Then a model's loss under a top-k pattern on the GPU against the CPU's.
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/attention.h"
#include "model/model.h"
#include "tests/unit/model_test_util.h"

namespace ratplus::test {
namespace {

// Queries q_pos0 … q_pos0 + q_len − 1 of each sequence over keys 0 … k_len − 1; period > 0 makes every
// sequence's key j a copy of its key j mod period, so that equal blocks tie.
struct TopKCase {
  const char* name;
  int64_t batch, q_len, q_pos0, k_len, dh;
  std::vector<KeySet> heads;
  std::vector<BlockTopK> blocks;
  int64_t period = 0;
};

void PrintTo(const TopKCase& c, std::ostream* os) { *os << c.name; }

constexpr BlockTopK quest(int64_t block, int64_t k) { return {block, k, BlockScore::quest}; }
constexpr BlockTopK moba(int64_t block, int64_t k) { return {block, k, BlockScore::moba}; }

AttentionArgs topk_args(const TopKCase& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse) {
  return {.q = q, .batch = c.batch, .q_len = c.q_len, .q_pos0 = c.q_pos0, .k = k, .v = v, .k_len = c.k_len,
          .head_keys = c.heads, .head_blocks = c.blocks, .out = out, .lse = lse};
}

// q and the keys and values side by side ([k | v], padded rows), random, keys periodic when asked.
struct Inputs {
  int64_t width;
  Pair q, kv;
  Inputs(const TopKCase& c, int64_t pad)
      : width(static_cast<int64_t>(c.heads.size()) * c.dh), q(c.batch * c.q_len, width, 51, 1, pad),
        kv(c.batch * c.k_len, 2 * width, 52, 1, pad) {
    if (c.period == 0) return;
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t j = c.period; j < c.k_len; ++j)
        for (int64_t col = 0; col < width; ++col)
          kv.h.ptr<float>()[(b * c.k_len + j) * kv.h.ld + col] =
              kv.h.ptr<float>()[(b * c.k_len + j % c.period) * kv.h.ld + col];
    copy_tensor(kv.d, kv.h);
  }
  Tensor slice(const Tensor& t, int i) const { return t.cols_slice(i * width, width); }
};

class GpuTopK : public ::testing::TestWithParam<TopKCase> {};

TEST_P(GpuTopK, F32MatchesCpu) {
  RATPLUS_REQUIRE_GPU();
  const TopKCase& c = GetParam();
  Inputs in(c, 3);
  const int64_t rows = c.batch * c.q_len, heads = static_cast<int64_t>(c.heads.size());
  Pair out(rows, in.width, 53), lse(rows, heads, 54);
  attention_forward(topk_args(c, in.q.h, in.slice(in.kv.h, 0), in.slice(in.kv.h, 1), out.h, lse.h));
  attention_forward(topk_args(c, in.q.d, in.slice(in.kv.d, 0), in.slice(in.kv.d, 1), out.d, lse.d));
  out.expect_matches(1e-5, "top-k out");
  lse.expect_matches(1e-5, "top-k lse");
}

TEST_P(GpuTopK, Bf16MatchesCpu) {
  RATPLUS_REQUIRE_GPU();
  const TopKCase& c = GetParam();
  Inputs in(c, 8);
  const int64_t rows = c.batch * c.q_len, heads = static_cast<int64_t>(c.heads.size());
  const DeviceBf16 q16 = round_to_bf16(in.q, in.width + 8), kv16 = round_to_bf16(in.kv, 2 * in.width + 8);
  const DeviceBf16 out16(rows, in.width, in.width);
  Pair out(rows, in.width, 55), lse(rows, heads, 56);
  attention_forward(topk_args(c, in.q.h, in.slice(in.kv.h, 0), in.slice(in.kv.h, 1), out.h, lse.h));
  attention_forward(topk_args(c, q16.t, in.slice(kv16.t, 0), in.slice(kv16.t, 1), out16.t, lse.d));
  convert_tensor(out.d, out16.t);
  out.expect_matches(1e-2, "top-k out (bf16)");
  lse.expect_matches(1e-5, "top-k lse (bf16 inputs)");
}

const KeySet kNone{0, 0, 0}, kDense{1, 0, 0};

INSTANTIATE_TEST_SUITE_P(
    Patterns, GpuTopK,
    ::testing::Values(
        TopKCase{"quest_dh64_t_not_multiple_of_b", 2, 300, 0, 300, 64, {kNone, kNone}, {quest(16, 3), quest(16, 3)}},
        TopKCase{"moba_dh40_window_sinks", 1, 257, 0, 257, 40, {{0, 5, 2}}, {moba(8, 4)}},
        TopKCase{"k_above_the_blocks", 2, 100, 0, 100, 64, {kNone, kNone}, {quest(32, 10), moba(32, 10)}},
        TopKCase{"k_zero_window", 1, 90, 0, 90, 40, {{0, 3, 0}}, {moba(8, 0)}},
        TopKCase{"b1_dilated", 1, 130, 0, 130, 64, {{4, 0, 0}, {4, 0, 0}}, {quest(1, 5), moba(1, 5)}},
        TopKCase{"hybrid_dense_and_topk",
                 2, 333, 0, 333, 64,
                 {kDense, kDense, {4, 8, 2}, {4, 8, 2}},
                 {{}, {}, quest(16, 2), quest(16, 2)}},
        TopKCase{"hybrid_mixed_b_score_local_dh40",
                 1, 200, 0, 200, 40,
                 {kNone, {3, 2, 1}, {0, 16, 0}},
                 {quest(4, 2), moba(64, 1), {}}},
        TopKCase{"chunk", 2, 77, 150, 300, 64, {kNone, {16, 4, 1}}, {quest(16, 2), moba(10, 3)}},
        TopKCase{"tied_blocks", 2, 200, 0, 200, 64, {kNone, kNone}, {quest(8, 3), moba(8, 3)}, 8},
        TopKCase{"dh128_b64_with_dilation", 1, 1100, 0, 1100, 128,
                 {kNone, kNone, {16, 0, 0}, {16, 0, 0}},
                 {quest(64, 4), moba(64, 4), quest(64, 4), moba(64, 4)}}),
    [](const auto& info) { return std::string(info.param.name); });

// A small model's loss under a per-head top-k hybrid, on the GPU (f32 and bf16) and on the CPU (f32).
double topk_model_loss(Device device, DType dtype, bool recurrence) {
  ModelConfig config;
  config.vocab_size = 301;
  config.d_model = 96;
  config.n_layers = 2;
  config.n_heads = 3;
  config.d_ffn = 200;
  config.recurrence = recurrence;
  config.init_std = 0.1;
  Model reference(config, Device::cpu, DType::f32);
  reference.init_parameters(5);
  Model model(config, device, dtype);
  model.set_parameters(reference.get_parameters());
  const int64_t batch = 3, seq = 131;
  std::vector<int32_t> inputs(batch * seq), targets(batch * seq);
  for (int64_t i = 0; i < batch * seq; ++i) {
    inputs[i] = static_cast<int32_t>(splitmix64(i) % 301);
    targets[i] = static_cast<int32_t>(splitmix64(i + 7) % 301);
  }
  const Pattern pattern = Pattern::parse("layers=heads=1:dense+2:topk:B=16,K=2,W=8,P=2,D=4|topk:B=8,K=3,score=moba");
  return batch_loss(model, inputs.data(), targets.data(), batch, seq, pattern).mean();
}

TEST(GpuTopKModel, LossMatchesCpu) {
  RATPLUS_REQUIRE_GPU();
  for (const bool recurrence : {true, false}) {
    const double cpu = topk_model_loss(Device::cpu, DType::f32, recurrence);
    EXPECT_NEAR(topk_model_loss(Device::cuda, DType::f32, recurrence), cpu, 1e-5 * cpu) << "recurrence " << recurrence;
    EXPECT_NEAR(topk_model_loss(Device::cuda, DType::bf16, recurrence), cpu, 1e-2 * cpu) << "recurrence " << recurrence;
  }
}

}  // namespace
}  // namespace ratplus::test
