// The whole model on the GPU against the CPU reference: in f32 the loss and every parameter's gradient
// agree tightly, in bf16 mixed precision to bf16 accuracy, under dense, dilated, local and hybrid patterns,
// with and without recurrence, tied and untied; training runs on the GPU (f32 and bf16) follow the CPU
// run's loss curve.
#include <cmath>
#include <filesystem>
#include <vector>

#include "core/config.h"
#include "data/synthetic.h"
#include "gpu_test_util.h"
#include "model/model.h"
#include "tests/unit/model_test_util.h"
#include "trainer/trainer.h"

namespace ratplus::test {
namespace {

class GpuModel : public ::testing::TestWithParam<ModelCase> {};

// Both models with the same parameters, one batch through forward_backward on each.
struct Comparison {
  LossSum cpu_loss, gpu_loss;
  double gpu_eval_loss;
  std::vector<float> cpu_grads, gpu_grads;
  ParameterTable table;
};

Comparison compare(const ModelCase& c, DType gpu_type) {
  ModelConfig config;
  config.vocab_size = 301;
  config.d_model = 96;
  config.n_layers = 2;
  config.n_heads = 3;
  config.d_ffn = 200;
  config.recurrence = c.recurrence;
  config.tie_embeddings = c.tied;
  config.init_std = 0.1;
  Model cpu(config, Device::cpu, DType::f32), gpu(config, Device::cuda, gpu_type);
  cpu.init_parameters(5);
  gpu.set_parameters(cpu.get_parameters());
  const int64_t batch = 3, seq = 131;
  std::vector<int32_t> inputs(batch * seq), targets(batch * seq);
  for (int64_t i = 0; i < batch * seq; ++i) {
    inputs[i] = static_cast<int32_t>(splitmix64(i) % 301);
    targets[i] = i % 11 == 4 ? -1 : static_cast<int32_t>(splitmix64(i + 7) % 301);
  }
  const Pattern pattern = Pattern::parse(c.pattern);
  const Gradients cpu_grads(cpu), gpu_grads(gpu);
  Comparison r{forward_backward(cpu, inputs.data(), targets.data(), batch, seq, pattern, cpu_grads),
               forward_backward(gpu, inputs.data(), targets.data(), batch, seq, pattern, gpu_grads),
               batch_loss(gpu, inputs.data(), targets.data(), batch, seq, pattern).mean(),
               to_host_floats(cpu_grads), to_host_floats(gpu_grads), cpu.table()};
  return r;
}

TEST_P(GpuModel, LossAndEveryGradientMatchCpu) {
  RATPLUS_REQUIRE_GPU();
  const Comparison r = compare(GetParam(), DType::f32);
  const double loss = r.cpu_loss.mean();
  EXPECT_EQ(r.cpu_loss.count, r.gpu_loss.count);
  EXPECT_NEAR(r.gpu_loss.mean(), loss, 1e-5 * loss);
  EXPECT_NEAR(r.gpu_eval_loss, loss, 1e-5 * loss);
  for (const ParameterInfo& p : r.table.entries()) {
    double scale = 0;
    for (int64_t i = 0; i < p.numel(); ++i) scale = std::max(scale, std::abs(double(r.cpu_grads[p.offset + i])));
    for (int64_t i = 0; i < p.numel(); ++i)
      ASSERT_NEAR(r.gpu_grads[p.offset + i], r.cpu_grads[p.offset + i], 1e-4 * scale) << p.name << " element " << i;
  }
}

TEST_P(GpuModel, MixedPrecisionTracksCpuToBf16Accuracy) {
  RATPLUS_REQUIRE_GPU();
  const Comparison r = compare(GetParam(), DType::bf16);
  const double loss = r.cpu_loss.mean();
  EXPECT_NEAR(r.gpu_loss.mean(), loss, 1e-2 * loss);
  EXPECT_NEAR(r.gpu_eval_loss, loss, 1e-2 * loss);
  for (const ParameterInfo& p : r.table.entries()) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < p.numel(); ++i) {
      const double a = r.cpu_grads[p.offset + i], b = r.gpu_grads[p.offset + i];
      diff += (a - b) * (a - b);
      norm += a * a;
    }
    EXPECT_LT(std::sqrt(diff), 0.05 * std::sqrt(norm) + 1e-12) << p.name << ": relative gradient error";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, GpuModel,
    ::testing::Values(ModelCase{"dense", true, true, "dense"}, ModelCase{"dilated", true, true, "dilated:D=16"},
                      ModelCase{"dilated_window_sinks_untied", true, false, "dilated:D=7,W=20,P=4"},
                      ModelCase{"local", true, true, "local:W=33,P=2"},
                      ModelCase{"per_layer_and_head", true, true, "layers=heads=1:dense+2:dilated:D=8|local:W=10"},
                      ModelCase{"attention_only", false, true, "dilated:D=4,W=3"}),
    [](const auto& info) { return std::string(info.param.name); });

// Loss on fixed held-out windows after every step of a tiny training run on `device` in `precision`.
std::vector<double> training_curve(const std::filesystem::path& dir, const char* device, const char* precision,
                                   int steps) {
  const ExperimentConfig config = parse_experiment_config(
      "", "test",
      {"model.vocab_size=256", "model.d_model=64", "model.n_heads=4", "model.d_ffn=256", "data.seq_len=128",
       "data.eos_id=0", "train.steps=" + std::to_string(steps), "train.global_batch=8", "train.micro_batch=4",
       "train.arl_dilation=16", "optim.lr=3e-3", std::string("runtime.precision=") + precision,
       std::string("runtime.device=") + device, "data.train=" + (dir / "train.bin").string(),
       "checkpoint.resume=never", "checkpoint.dir=" + (dir / device).string()});
  Trainer trainer(config);
  std::vector<int32_t> in(8 * 128), tg(8 * 128);
  TokenStream data({(dir / "train.bin").string()}, ShardFormat::automatic, 256);
  for (int k = 0; k < 8; ++k) data.window(1000 + k, 128, 0, in.data() + k * 128, tg.data() + k * 128);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    trainer.step();
    losses.push_back(batch_loss(trainer.model(), in.data(), tg.data(), 8, 128, Pattern::dense()).mean());
  }
  return losses;
}

class GpuTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    RATPLUS_REQUIRE_GPU();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    write_llmc_shard((dir_ / "train.bin").string(), synthesize_tokens(400000, 256, 1), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  const std::filesystem::path dir_ = std::filesystem::temp_directory_path() / "ratplus_gpu_training";
};

TEST_F(GpuTraining, Fp32LossCurveFollowsTheCpuRun) {
  const std::vector<double> cpu = training_curve(dir_, "cpu", "fp32", 50);
  const std::vector<double> gpu = training_curve(dir_, "cuda", "fp32", 50);
  for (size_t s = 0; s < cpu.size(); ++s) EXPECT_NEAR(gpu[s], cpu[s], 2e-3) << "after step " << s;
  EXPECT_LT(gpu.back(), gpu.front() - 0.3);
}

TEST_F(GpuTraining, Bf16LossCurveFollowsTheCpuFp32Run) {
  const std::vector<double> cpu = training_curve(dir_, "cpu", "fp32", 200);
  const std::vector<double> gpu = training_curve(dir_, "cuda", "bf16", 200);
  for (size_t s = 0; s < cpu.size(); s += 10) EXPECT_NEAR(gpu[s], cpu[s], 0.05) << "after step " << s;
  EXPECT_LT(gpu.back(), gpu.front() - 0.5);
}

}  // namespace
}  // namespace ratplus::test
