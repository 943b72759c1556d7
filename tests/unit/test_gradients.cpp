// Backward passes against central finite differences in double precision: every op's backward, the two
// blocks, and the whole model (all parameters) under dense, dilated, local and hybrid patterns, with and
// without recurrence, tied and untied heads.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/recurrence.h"
#include "kernels/rope.h"
#include "model/blocks.h"
#include "model/model.h"
#include "model_test_util.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

TEST(OpGradients, RmsNorm) {
  const int64_t rows = 5, n = 7;
  Owned x = random(rows, n, 1, 1, DType::f64, 2), w = random(1, n, 2), r = random(rows, n, 3);
  Owned y(rows, n), rstd(1, rows), dx(rows, n), dw(1, n);
  auto loss = [&] {
    rmsnorm_forward(y, rstd, x, w, 1e-6);
    return weighted_sum(y, r);
  };
  loss();
  rmsnorm_backward(dx, dw, r, x, w, rstd, false);
  expect_gradient(x, dx, loss, "rmsnorm dx");
  expect_gradient(w, dw, loss, "rmsnorm dw");
}

TEST(OpGradients, Recurrence) {
  const int64_t batch = 2, seq = 9, ch = 5;
  Owned k = random(batch * seq, ch, 4), v = random(batch * seq, ch, 5), g = random(batch * seq, ch, 6);
  Owned rk = random(batch * seq, ch, 7), rv = random(batch * seq, ch, 8);
  Owned ko(batch * seq, ch), vo(batch * seq, ch), dk(batch * seq, ch), dv(batch * seq, ch), dg(batch * seq, ch);
  auto loss = [&] {
    recurrence_forward(ko, vo, k, v, g, batch);
    return weighted_sum(ko, rk) + weighted_sum(vo, rv);
  };
  loss();
  recurrence_backward(dk, dv, dg, rk, rv, ko, vo, k, v, g, batch);
  expect_gradient(k, dk, loss, "recurrence dk");
  expect_gradient(v, dv, loss, "recurrence dv");
  expect_gradient(g, dg, loss, "recurrence dg");
}

TEST(OpGradients, RopeInverseIsTheAdjoint) {
  const int64_t seq = 6, heads = 2, dh = 6;
  Owned x = random(2 * seq, heads * dh, 9), r = random(2 * seq, heads * dh, 10), y(2 * seq, heads * dh),
        dx(2 * seq, heads * dh);
  auto loss = [&] {
    rope(y, x, seq, heads, 100.0, 3, false);
    return weighted_sum(y, r);
  };
  rope(dx, r, seq, heads, 100.0, 3, true);
  expect_gradient(x, dx, loss, "rope");
}

TEST(OpGradients, GateAndGelu) {
  Owned x = random(3, 8, 11, 2), g = random(3, 8, 12, 2), r = random(3, 8, 13), y(3, 8), dx(3, 8), dg(3, 8);
  auto gate_loss = [&] {
    sigmoid_gate_forward(y, x, g);
    return weighted_sum(y, r);
  };
  sigmoid_gate_backward(dx, dg, r, x, g);
  expect_gradient(x, dx, gate_loss, "gate dx");
  expect_gradient(g, dg, gate_loss, "gate dgate");
  auto gelu_loss = [&] {
    gelu_forward(y, x);
    return weighted_sum(y, r);
  };
  gelu_backward(dx, r, x);
  expect_gradient(x, dx, gelu_loss, "gelu");
}

struct AttentionGradientCase {
  const char* name;
  std::vector<KeySet> heads;
};

void PrintTo(const AttentionGradientCase& c, std::ostream* os) { *os << c.name; }

class AttentionGradient : public ::testing::TestWithParam<AttentionGradientCase> {};

TEST_P(AttentionGradient, MatchesFiniteDifferences) {
  const std::vector<KeySet>& heads = GetParam().heads;
  const int64_t batch = 2, seq = 19, dh = 4, width = dh * static_cast<int64_t>(heads.size()), rows = batch * seq;
  Owned qkv = random(rows, 3 * width, 14, 1.5, DType::f64, 1), r = random(rows, width, 15);
  const Tensor q = qkv.t.cols_slice(0, width), k = qkv.t.cols_slice(width, width),
               v = qkv.t.cols_slice(2 * width, width);
  Owned out(rows, width), lse(rows, static_cast<int64_t>(heads.size())), dqkv(rows, 3 * width, DType::f64, 2);
  const Tensor dq = dqkv.t.cols_slice(0, width), dk = dqkv.t.cols_slice(width, width),
               dv = dqkv.t.cols_slice(2 * width, width);
  const AttentionArgs a{.q = q, .batch = batch, .q_len = seq, .k = k, .v = v, .k_len = seq, .head_keys = heads,
                        .out = out, .lse = lse};
  auto loss = [&] {
    attention_forward(a);
    return weighted_sum(out, r);
  };
  loss();
  attention_backward(a, {.dout = r, .dq = dq, .dk = dk, .dv = dv});
  expect_gradient(q, dq, loss, "attention dq");
  expect_gradient(k, dk, loss, "attention dk");
  expect_gradient(v, dv, loss, "attention dv");
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, AttentionGradient,
    ::testing::Values(AttentionGradientCase{"dense", {{1, 0, 0}}},
                      AttentionGradientCase{"dilated", {{4, 0, 0}, {3, 2, 1}}},
                      AttentionGradientCase{"local_dense_dilated", {{0, 3, 2}, {1, 0, 0}, {5, 1, 0}}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- blocks ----

struct TemporalBlockFixture {
  Dims dims;
  Owned norm, in_proj, out_proj, g_norm, g_in, g_out;
  Owned h, rstd, z, k_rec, v_rec, q_rot, k_rot, att, lse, gated;
  Owned d_gated, d_att, dq_rot, dk_rot, dk_rec, dv_rec, dz, dh;
  TemporalBlockFixture(const Dims& d)
      : dims(d), norm(random(1, d.d, 20, 0.5)), in_proj(random(5 * d.d, d.d, 21, 0.5)),
        out_proj(random(d.d, d.d, 22, 0.5)), g_norm(1, d.d), g_in(5 * d.d, d.d), g_out(d.d, d.d),
        h(d.rows(), d.d), rstd(1, d.rows()), z(d.rows(), (d.recurrence ? 5 : 4) * d.d), k_rec(d.rows(), d.d),
        v_rec(d.rows(), d.d), q_rot(d.rows(), d.d), k_rot(d.rows(), d.d), att(d.rows(), d.d),
        lse(d.rows(), d.heads), gated(d.rows(), d.d), d_gated(d.rows(), d.d), d_att(d.rows(), d.d),
        dq_rot(d.rows(), d.d), dk_rot(d.rows(), d.d), dk_rec(d.rows(), d.d), dv_rec(d.rows(), d.d),
        dz(d.rows(), (d.recurrence ? 5 : 4) * d.d), dh(d.rows(), d.d) {}
  TemporalMixingWeights weights() const {
    const int64_t rows = (dims.recurrence ? 5 : 4) * dims.d;
    return {norm, in_proj.t.rows_slice(0, rows), out_proj};
  }
  TemporalMixingWeights grads() const {
    const int64_t rows = (dims.recurrence ? 5 : 4) * dims.d;
    return {g_norm, g_in.t.rows_slice(0, rows), g_out};
  }
  TemporalMixingState state() const { return {h, rstd, z, k_rec, v_rec, q_rot, k_rot, att, lse, gated}; }
  TemporalMixingScratch scratch() const { return {d_gated, d_att, dq_rot, dk_rot, dk_rec, dv_rec, dz, dh, {}}; }
};

class TemporalMixingGradient : public ::testing::TestWithParam<bool> {};

TEST_P(TemporalMixingGradient, MatchesFiniteDifferences) {
  const Dims dims{2, 11, 8, 2, 4, 16, GetParam(), 1e-6, 10000.0, 0, nullptr};
  TemporalBlockFixture f(dims);
  const std::vector<KeySet> heads = {{3, 1, 1}, {1, 0, 0}};
  Owned x = random(dims.rows(), dims.d, 23), r = random(dims.rows(), dims.d, 24), y(dims.rows(), dims.d),
        dx(dims.rows(), dims.d);
  TemporalMixingState s = f.state();
  auto loss = [&] {
    temporal_mixing_forward(dims, heads, f.weights(), x, y, s);
    return weighted_sum(y, r);
  };
  loss();
  TemporalMixingScratch scratch = f.scratch();
  temporal_mixing_backward(dims, heads, f.weights(), f.grads(), x, s, r, dx, scratch);
  expect_gradient(x, dx, loss, "temporal dx");
  expect_gradient(f.norm, f.g_norm, loss, "temporal norm");
  expect_gradient(f.weights().in_proj, f.grads().in_proj, loss, "temporal in_proj");
  expect_gradient(f.out_proj, f.g_out, loss, "temporal out_proj");
}

INSTANTIATE_TEST_SUITE_P(Recurrence, TemporalMixingGradient, ::testing::Bool());

TEST(ChannelMixingGradient, MatchesFiniteDifferences) {
  const Dims dims{2, 5, 6, 2, 3, 10, true, 1e-6, 10000.0, 0, nullptr};
  Owned norm = random(1, 6, 30), fc1 = random(10, 6, 31, 0.5), fc2 = random(6, 10, 32, 0.5);
  Owned gn(1, 6), g1(10, 6), g2(6, 10), h(10, 6), rstd(1, 10), pre(10, 10), act(10, 10), d_act(10, 10), dh(10, 6);
  Owned x = random(10, 6, 33), r = random(10, 6, 34), y(10, 6), dx(10, 6);
  ChannelMixingState s{h, rstd, pre, act};
  ChannelMixingScratch scratch{d_act, dh};
  auto loss = [&] {
    channel_mixing_forward(dims, {norm, fc1, fc2}, x, y, s);
    return weighted_sum(y, r);
  };
  loss();
  // The backward runs in place on the residual gradient, as the model uses it.
  Owned dres(10, 6);
  copy_tensor(dres, r);
  channel_mixing_backward(dims, {norm, fc1, fc2}, {gn, g1, g2}, x, s, dres, dres, scratch);
  expect_gradient(x, dres, loss, "ffn dx");
  expect_gradient(norm, gn, loss, "ffn norm");
  expect_gradient(fc1, g1, loss, "ffn fc1");
  expect_gradient(fc2, g2, loss, "ffn fc2");
}

// ---- the whole model ----

class ModelGradient : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelGradient, EveryParameterMatchesFiniteDifferences) {
  const ModelCase& c = GetParam();
  ModelConfig config;
  config.vocab_size = 23;
  config.d_model = 8;
  config.n_layers = 2;
  config.n_heads = 2;
  config.d_ffn = 12;
  config.recurrence = c.recurrence;
  config.tie_embeddings = c.tied;
  config.init_std = 0.4;
  Model model(config, Device::cpu, DType::f64);
  model.init_parameters(7);
  const int64_t batch = 2, seq = 9;
  std::vector<int32_t> inputs(batch * seq), targets(batch * seq);
  for (int64_t i = 0; i < batch * seq; ++i) {
    inputs[i] = static_cast<int32_t>(splitmix64(i) % 23);
    targets[i] = i % 5 == 3 ? -1 : static_cast<int32_t>(splitmix64(100 + i) % 23);
  }
  const Pattern pattern = Pattern::parse(c.pattern);
  const Gradients grads(model);
  const LossSum l = forward_backward(model, inputs.data(), targets.data(), batch, seq, pattern, grads);
  ASSERT_GT(l.count, 0);
  auto loss = [&] { return batch_loss(model, inputs.data(), targets.data(), batch, seq, pattern).mean(); };
  EXPECT_NEAR(loss(), l.mean(), 1e-12) << "the inference and the training forward disagree";
  for (const ParameterInfo& p : model.table().entries()) {
    const int index = model.table().find(p.name);
    expect_gradient(model.view(model.weights(), index), model.view(grads, index), loss, p.name.c_str(), 1e-6, 60);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, ModelGradient,
    ::testing::Values(ModelCase{"dense", true, true, "dense"},
                      ModelCase{"dilated", true, true, "dilated:D=3"},
                      ModelCase{"dilated_window_sinks_untied", true, false, "dilated:D=4,W=2,P=1"},
                      ModelCase{"local", true, true, "local:W=3,P=1"},
                      ModelCase{"per_layer", true, true, "layers=dense|dilated:D=2"},
                      ModelCase{"per_head", true, true, "heads=1:dense+1:dilated:D=3,W=1"},
                      ModelCase{"attention_only_dense", false, true, "dense"},
                      ModelCase{"attention_only_hybrid_untied", false, false, "layers=local:W=2|heads=1:dense+1:dilated:D=2"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ModelEquivalence, DilatedOneIsDense) {
  ModelConfig config;
  config.vocab_size = 31;
  config.d_model = 16;
  config.n_heads = 4;
  config.d_ffn = 32;
  config.init_std = 0.3;
  Model model(config, Device::cpu, DType::f32);
  model.init_parameters(3);
  std::vector<int32_t> inputs(3 * 40), targets(3 * 40);
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = static_cast<int32_t>(splitmix64(i) % 31);
    targets[i] = static_cast<int32_t>(splitmix64(i + 999) % 31);
  }
  const double dense = batch_loss(model, inputs.data(), targets.data(), 3, 40, Pattern::dense()).mean();
  for (const char* text : {"dilated:D=1", "dilated:D=1,W=5,P=3", "local:W=40", "layers=dense|dilated:D=1,W=2"}) {
    const double other = batch_loss(model, inputs.data(), targets.data(), 3, 40, Pattern::parse(text)).mean();
    EXPECT_EQ(other, dense) << text;
  }
  const double sparse = batch_loss(model, inputs.data(), targets.data(), 3, 40, Pattern::parse("dilated:D=8")).mean();
  EXPECT_NE(sparse, dense) << "a sparse pattern must change the loss";
}

}  // namespace
}  // namespace ratplus::test
