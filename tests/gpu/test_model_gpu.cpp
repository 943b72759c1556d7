// The whole model on the GPU against the CPU reference (both f32): the loss and every parameter's gradient
// under dense, dilated, local and hybrid patterns, with and without recurrence, tied and untied; and a
// short training run whose loss curve follows the CPU run.
#include <cmath>
#include <filesystem>
#include <vector>

#include "core/config.h"
#include "data/synthetic.h"
#include "gpu_test_util.h"
#include "model/model.h"
#include "trainer/trainer.h"

namespace ratplus::test {
namespace {

struct ModelCase {
  const char* name;
  bool recurrence, tied;
  const char* pattern;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

class GpuModel : public ::testing::TestWithParam<ModelCase> {};

TEST_P(GpuModel, LossAndEveryGradientMatchCpu) {
  RATPLUS_REQUIRE_GPU();
  const ModelCase& c = GetParam();
  ModelConfig config;
  config.vocab_size = 301;
  config.d_model = 96;
  config.n_layers = 2;
  config.n_heads = 3;
  config.d_ffn = 200;
  config.recurrence = c.recurrence;
  config.tie_embeddings = c.tied;
  config.init_std = 0.1;
  Model cpu(config, Device::cpu, DType::f32), gpu(config, Device::cuda, DType::f32);
  cpu.init_parameters(5);
  gpu.set_parameters(cpu.get_parameters());
  const int64_t batch = 3, seq = 131;
  std::vector<int32_t> inputs(batch * seq), targets(batch * seq);
  for (int64_t i = 0; i < batch * seq; ++i) {
    inputs[i] = static_cast<int32_t>(splitmix64(i) % 301);
    targets[i] = i % 11 == 4 ? -1 : static_cast<int32_t>(splitmix64(i + 7) % 301);
  }
  const Pattern pattern = Pattern::parse(c.pattern);
  cpu.zero_gradients();
  gpu.zero_gradients();
  const LossSum lc = cpu.forward_backward(inputs.data(), targets.data(), batch, seq, pattern, 1.0);
  const LossSum lg = gpu.forward_backward(inputs.data(), targets.data(), batch, seq, pattern, 1.0);
  EXPECT_EQ(lc.count, lg.count);
  EXPECT_NEAR(lg.mean(), lc.mean(), 1e-5 * lc.mean());
  EXPECT_NEAR(gpu.evaluate(inputs.data(), targets.data(), batch, seq, pattern).mean(), lc.mean(), 1e-5 * lc.mean());
  const std::vector<float> gc = to_host_floats(cpu.gradients()), gg = to_host_floats(gpu.gradients());
  for (const ParameterInfo& p : cpu.table().entries()) {
    double scale = 0;
    for (int64_t i = 0; i < p.numel(); ++i) scale = std::max(scale, std::abs(double(gc[p.offset + i])));
    for (int64_t i = 0; i < p.numel(); ++i)
      ASSERT_NEAR(gg[p.offset + i], gc[p.offset + i], 1e-4 * scale) << p.name << " element " << i;
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

TEST(GpuTraining, LossCurveFollowsTheCpuRun) {
  RATPLUS_REQUIRE_GPU();
  const auto dir = std::filesystem::temp_directory_path() / "ratplus_gpu_training";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  write_llmc_shard((dir / "train.bin").string(), synthesize_tokens(200000, 256, 1), 1);
  std::vector<std::vector<double>> curves;
  for (const char* device : {"cpu", "cuda"}) {
    const ExperimentConfig config = parse_experiment_config(
        "", "test",
        {"model.vocab_size=256", "model.d_model=64", "model.n_heads=4", "model.d_ffn=256", "data.seq_len=128",
         "data.eos_id=0", "train.steps=50", "train.global_batch=8", "train.micro_batch=4", "train.arl_dilation=16",
         "optim.lr=3e-3", "runtime.precision=fp32", std::string("runtime.device=") + device,
         "data.train=" + (dir / "train.bin").string(), "checkpoint.resume=never",
         "checkpoint.dir=" + (dir / device).string()});
    Trainer trainer(config);
    std::vector<double> losses;
    std::vector<int32_t> in(8 * 128), tg(8 * 128);
    TokenStream data({(dir / "train.bin").string()}, ShardFormat::automatic, 256);
    for (int k = 0; k < 8; ++k) data.window(1000 + k, 128, 0, in.data() + k * 128, tg.data() + k * 128);
    for (int s = 0; s < 50; ++s) {
      trainer.step();
      losses.push_back(trainer.model().evaluate(in.data(), tg.data(), 8, 128, Pattern::dense()).mean());
    }
    curves.push_back(losses);
  }
  for (size_t s = 0; s < curves[0].size(); ++s) EXPECT_NEAR(curves[1][s], curves[0][s], 2e-3) << "after step " << s;
  EXPECT_LT(curves[1].back(), curves[1].front() - 0.3);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ratplus::test
