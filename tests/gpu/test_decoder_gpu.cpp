// Decoding on the GPU against the CPU decoder (itself tested against the full forward pass): the same weights,
// prompts of different lengths in one batch, every prefill and step's logits — f32 to 1e-4, bf16 weights and
// cache (f32 state and statistics) to bf16 accuracy, and each with an 8-bit cache on both — for every kind of
// pattern, through the CUDA attention kernel over the compact cache; and under top-k block patterns (quest
// and moba, with W, P and D, in a per-layer and per-head hybrid beside a dense group), through the top-k
// kernel and the block summaries the GPU keeps, f32 and bf16.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "gpu_test_util.h"
#include "tests/unit/model_test_util.h"
#include "inference/decoder.h"

namespace ratplus::test {
namespace {

class GpuDecoding : public ::testing::TestWithParam<ModelCase> {};

// The largest |gpu − cpu| over rows [r0, r0 + n) of the logits, relative to max(1, the largest |cpu|).
double relative_error(const Pair& logits, int64_t r0, int64_t n) {
  const std::vector<float> gpu = to_host_floats(logits.d.rows_slice(r0, n));
  double error = 0, scale = 1;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < logits.h.cols; ++c) {
      const double want = logits.h.ptr<float>()[(r0 + r) * logits.h.ld + c];
      error = std::max(error, std::abs(gpu[r * logits.h.cols + c] - want));
      scale = std::max(scale, std::abs(want));
    }
  return error / scale;
}

// The relative error of the GPU decoder's logits against the CPU's after each prefill and each step.
std::vector<double> decode_errors(const ModelCase& c, DType gpu_type, CachePrecision cache = CachePrecision::model) {
  ModelConfig config;
  config.vocab_size = 301;
  config.d_model = 128;
  config.n_layers = 2;
  config.n_heads = 2;
  config.d_ffn = 256;
  config.recurrence = c.recurrence;
  config.tie_embeddings = c.tied;
  config.init_std = 0.1;
  Model cpu(config, Device::cpu, DType::f32), gpu(config, Device::cuda, gpu_type);
  cpu.init_parameters(5);
  gpu.set_parameters(cpu.get_parameters());
  const Pattern pattern = Pattern::parse(c.pattern);
  const std::vector<int64_t> prompts = {1, 40, 77};
  const int64_t batch = 3, steps = 20;
  Decoder on_cpu(cpu, pattern, batch, 77 + steps, cache), on_gpu(gpu, pattern, batch, 77 + steps, cache);
  Pair logits(batch, 301, 1);
  std::vector<double> errors;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int32_t> prompt(prompts[b]);
    for (int64_t i = 0; i < prompts[b]; ++i) prompt[i] = static_cast<int32_t>(splitmix64(100 * b + i) % 301);
    on_cpu.prefill(b, prompt, logits.h.rows_slice(b, 1));
    on_gpu.prefill(b, prompt, logits.d.rows_slice(b, 1));
    errors.push_back(relative_error(logits, b, 1));
  }
  for (int64_t k = 0; k < steps; ++k) {
    std::vector<int32_t> next(batch);
    for (int64_t b = 0; b < batch; ++b) next[b] = static_cast<int32_t>(splitmix64(7 * k + b + 999) % 301);
    on_cpu.step(next, logits.h);
    on_gpu.step(next, logits.d);
    errors.push_back(relative_error(logits, 0, batch));
  }
  return errors;
}

// Every prefill (the first `batch` errors) and step within tol.
void decode_and_compare(const ModelCase& c, DType gpu_type, double tol,
                        CachePrecision cache = CachePrecision::model) {
  const std::vector<double> errors = decode_errors(c, gpu_type, cache);
  for (size_t i = 0; i < errors.size(); ++i) EXPECT_LE(errors[i], tol) << "prefill or step " << i;
}

TEST_P(GpuDecoding, F32MatchesTheCpuDecoder) {
  RATPLUS_REQUIRE_GPU();
  decode_and_compare(GetParam(), DType::f32, 1e-4);
}

TEST_P(GpuDecoding, Bf16TracksTheCpuDecoder) {
  RATPLUS_REQUIRE_GPU();
  decode_and_compare(GetParam(), DType::bf16, 3e-2);
}

// Both through 8-bit caches: the GPU's integers and scales are the CPU's but where the two round a value lying
// on a half step differently (one step of that head's grid), so f32 follows the CPU to 1e-3.
TEST_P(GpuDecoding, Int8MatchesTheCpuDecoder) {
  RATPLUS_REQUIRE_GPU();
  decode_and_compare(GetParam(), DType::f32, 1e-3, CachePrecision::int8);
}

TEST_P(GpuDecoding, Bf16Int8TracksTheCpuDecoder) {
  RATPLUS_REQUIRE_GPU();
  decode_and_compare(GetParam(), DType::bf16, 3e-2, CachePrecision::int8);
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, GpuDecoding,
    ::testing::Values(ModelCase{"dense", true, true, "dense"},
                      ModelCase{"dilated_window_sinks_untied", true, false, "dilated:D=16,W=8,P=2"},
                      ModelCase{"local", true, true, "local:W=24,P=1"},
                      ModelCase{"per_layer_and_head", true, true, "layers=dense|heads=1:dilated:D=8+1:local:W=5"},
                      ModelCase{"attention_only", false, true, "dilated:D=4,W=3"}),
    [](const auto& info) { return std::string(info.param.name); });

// Top-k caches keep keys in the model's type (no 8-bit cache): prompts of 1, 40 and 77 tokens and 20 steps
// cross block boundaries of B = 4, 8 and 16. In f32 both devices choose the same blocks. In bf16 the rounded
// queries and keys can reorder two blocks whose scores lie within bf16 rounding of each other; the step then
// attends to another block than the CPU and its logits move by far more than rounding (0.57 in one step of
// the quest case, against about 0.01 elsewhere). So bf16 is held to the dense tolerance at all but two of
// the 23 prefills and steps: a wrong summary, score or selection would miss it at most of them.
class GpuTopKDecoding : public ::testing::TestWithParam<ModelCase> {};

TEST_P(GpuTopKDecoding, F32MatchesTheCpuDecoder) {
  RATPLUS_REQUIRE_GPU();
  decode_and_compare(GetParam(), DType::f32, 1e-4);
}

TEST_P(GpuTopKDecoding, Bf16TracksTheCpuDecoder) {
  RATPLUS_REQUIRE_GPU();
  const std::vector<double> errors = decode_errors(GetParam(), DType::bf16);
  int count = 0;
  std::string beyond;
  for (size_t i = 0; i < errors.size(); ++i)
    if (!(errors[i] <= 3e-2)) {
      ++count;
      beyond += fmt::format(" {}: {:.3g}", i, errors[i]);
    }
  EXPECT_LE(count, 2) << "prefills and steps beyond 3e-2:" << beyond;
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, GpuTopKDecoding,
    ::testing::Values(ModelCase{"quest", true, true, "topk:B=16,K=2"},
                      ModelCase{"moba_window_sinks_dilated_untied", true, false, "topk:B=8,K=3,W=5,P=2,D=7,score=moba"},
                      ModelCase{"hybrid", true, true, "layers=heads=1:dense+1:topk:B=4,K=5,W=3|topk:B=16,K=1,score=moba"},
                      ModelCase{"attention_only", false, true, "topk:B=8,K=2,W=2"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace ratplus::test
