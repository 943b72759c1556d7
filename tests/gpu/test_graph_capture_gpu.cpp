// One training step captured in a CUDA graph: with the tokens already on the device, zeroing the gradients
// and the forward and backward passes only enqueue work on the GPU context's stream, so they can be
// captured (global mode: any use of the legacy stream or any allocation would fail the capture) and
// replayed; the replay's loss and gradients equal those of the step run directly. (Built with the CUDA
// backend only.)
#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/cuda/gpu_context.h"
#include "model/model.h"
#include "tests/unit/model_test_util.h"

namespace ratplus::test {
namespace {

void expect_same_gradients(const std::vector<float>& got, const std::vector<float>& want, const ParameterTable& table,
                           double rel) {
  for (const ParameterInfo& p : table.entries()) {
    double scale = 0;
    for (int64_t i = 0; i < p.numel(); ++i) scale = std::max(scale, std::abs(double(want[p.offset + i])));
    ASSERT_GT(scale, 0) << p.name << " has no gradient";
    // The norm and embedding gradients are summed with atomics, in an order that may change between runs.
    for (int64_t i = 0; i < p.numel(); ++i)
      ASSERT_NEAR(got[p.offset + i], want[p.offset + i], rel * scale) << p.name << " element " << i;
  }
}

class GpuGraph : public ::testing::TestWithParam<DType> {};

TEST_P(GpuGraph, TrainingStepCapturesAndReplays) {
  RATPLUS_REQUIRE_GPU();
  ModelConfig config;
  config.vocab_size = 301;
  config.d_model = 128;
  config.n_layers = 2;
  config.n_heads = 2;
  config.d_ffn = 256;
  config.init_std = 0.1;
  Model model(config, Device::cuda, GetParam());
  model.init_parameters(5);
  const int64_t batch = 2, seq = 200;
  std::vector<int32_t> inputs(batch * seq), targets(batch * seq);
  for (int64_t i = 0; i < batch * seq; ++i) {
    inputs[i] = static_cast<int32_t>(splitmix64(i) % 301);
    targets[i] = i % 13 == 5 ? -1 : static_cast<int32_t>(splitmix64(i + 3) % 301);
  }
  const Pattern pattern = Pattern::parse("dilated:D=8,W=16,P=2");
  const Gradients grads(model);
  const ForwardInput input{inputs.data(), batch, seq, pattern};
  const ForwardOutput output = LossOutput{targets.data(), grads, 1.0};
  model.stage(input, output);

  // The step run directly; it also makes every plan and scratch buffer the step needs.
  zero_tensor(grads);
  model.forward_staged(input, output);
  model.backward(grads);
  const LossSum direct = model.staged_loss();
  const std::vector<float> direct_grads = to_host_floats(grads);

  const cudaStream_t stream = cuda_stream();
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  zero_tensor(grads);
  model.forward_staged(input, output);
  model.backward(grads);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  for (int replay = 0; replay < 2; ++replay) {
    SCOPED_TRACE(testing::Message() << "replay " << replay);
    // Garbage in the gradients, so the replay must zero and rewrite them.
    from_host_floats(grads, std::vector<float>(direct_grads.size(), 7.0f));
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    const LossSum replayed = model.staged_loss();
    EXPECT_EQ(replayed.count, direct.count);
    EXPECT_NEAR(replayed.sum, direct.sum, 1e-9 * std::abs(direct.sum));
    expect_same_gradients(to_host_floats(grads), direct_grads, model.table(), 1e-5);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

INSTANTIATE_TEST_SUITE_P(Types, GpuGraph, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace ratplus::test

#endif  // RATPLUS_HAVE_CUDA
