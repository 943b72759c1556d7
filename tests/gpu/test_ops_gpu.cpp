// Every CUDA op against its CPU twin on random inputs of awkward sizes: T not a multiple of any tile,
// D not dividing T, W larger than t, one head, odd vocabularies, strided column slices.
#include <vector>

#include "gpu_test_util.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/optimizer.h"
#include "kernels/recurrence.h"
#include "kernels/rope.h"
#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/flash_attention.h"
#endif

namespace ratplus::test {
namespace {

TEST(GpuOps, MatmulAllTransposes) {
  RATPLUS_REQUIRE_GPU();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t m = 67, k = 129, n = 33;
      Pair a = ta ? Pair(k, m, 1, 1, 3) : Pair(m, k, 1, 1, 3);
      Pair b = tb ? Pair(n, k, 2, 1, 1) : Pair(k, n, 2, 1, 1);
      Pair c(m, n, 3, 1, 2);
      matmul(c.h, a.h, ta, b.h, tb, 0.5, 2.0);
      matmul(c.d, a.d, ta, b.d, tb, 0.5, 2.0);
      c.expect_matches(1e-4, "matmul");
    }
}

// Rows of 301 f32 (one thread per element) and of 300 f32 with 16-byte aligned rows (one per 4-element chunk).
TEST(GpuOps, ElementwiseGateAndGelu) {
  RATPLUS_REQUIRE_GPU();
  for (const auto [cols, pad] : {std::pair<int64_t, int64_t>{301, 2}, {300, 4}}) {
    SCOPED_TRACE(::testing::Message() << cols << " columns");
    Pair x(37, cols, 4, 2, pad), g(37, cols, 5, 2, pad), y(37, cols, 6, 1, pad), dy(37, cols, 7, 1, pad),
        dx(37, cols, 8, 1, pad), dg(37, cols, 9, 1, pad);
    sigmoid_gate_forward(y.h, x.h, g.h);
    sigmoid_gate_forward(y.d, x.d, g.d);
    y.expect_matches(1e-6, "gate");
    sigmoid_gate_backward(dx.h, dg.h, dy.h, x.h, g.h);
    sigmoid_gate_backward(dx.d, dg.d, dy.d, x.d, g.d);
    dx.expect_matches(1e-6, "gate dx");
    dg.expect_matches(1e-6, "gate dgate");
    gelu_forward(y.h, x.h);
    gelu_forward(y.d, x.d);
    y.expect_matches(1e-6, "gelu");
    gelu_backward(dx.h, dy.h, x.h);
    gelu_backward(dx.d, dy.d, x.d);
    dx.expect_matches(1e-5, "gelu dx");
    add_inplace(y.h, x.h);
    add_inplace(y.d, x.d);
    y.expect_matches(1e-6, "add");
  }
}

// bf16 rows of 8-element chunks (16-byte aligned) and rows of 301: the CPU's f32 ops on the same bf16 inputs,
// within the output's bf16 rounding.
TEST(GpuOps, ElementwiseGateAndGeluBf16) {
  RATPLUS_REQUIRE_GPU();
  for (const auto [cols, ld] : {std::pair<int64_t, int64_t>{304, 312}, {301, 301}}) {
    SCOPED_TRACE(::testing::Message() << cols << " columns");
    Pair x(37, cols, 4, 2), g(37, cols, 5, 2), y(37, cols, 6);
    const DeviceBf16 xb = round_to_bf16(x, ld), gb = round_to_bf16(g, ld);
    DeviceBf16 yb(37, cols, ld);
    sigmoid_gate_forward(y.h, x.h, g.h);
    sigmoid_gate_forward(yb.t, xb.t, gb.t);
    convert_tensor(y.d, yb.t);
    y.expect_matches(8e-3, "gate");
    gelu_forward(y.h, x.h);
    gelu_forward(yb.t, xb.t);
    convert_tensor(y.d, yb.t);
    y.expect_matches(8e-3, "gelu");
    add_inplace(y.h, x.h);
    add_inplace(yb.t, xb.t);
    convert_tensor(y.d, yb.t);
    y.expect_matches(8e-3, "add");
  }
}

TEST(GpuOps, EmbeddingGatherAndScatter) {
  RATPLUS_REQUIRE_GPU();
  const int64_t vocab = 97, d = 33, rows = 300;
  Pair table(vocab, d, 10), out(rows, d, 11), dout(rows, d, 12), dtable(vocab, d, 13);
  std::vector<int32_t> tokens(rows);
  for (int64_t i = 0; i < rows; ++i) tokens[i] = static_cast<int32_t>(splitmix64(i) % 7 * 13 % vocab);  // repeats
  Buffer device_tokens(rows * 4, Device::cuda);
  copy_tensor(Tensor{device_tokens.data(), 1, rows, rows, DType::i32, Device::cuda},
              Tensor{tokens.data(), 1, rows, rows, DType::i32, Device::cpu});
  embedding_forward(out.h, tokens.data(), table.h);
  embedding_forward(out.d, static_cast<int32_t*>(device_tokens.data()), table.d);
  out.expect_matches(0, "embedding");
  embedding_backward(dtable.h, tokens.data(), dout.h);
  embedding_backward(dtable.d, static_cast<int32_t*>(device_tokens.data()), dout.d);
  dtable.expect_matches(1e-5, "embedding backward");
}

struct RecurrenceCase {
  int64_t batch, seq, ch;
  double gate_bias;  // added to the gate: a = sigmoid(bias + N(0, 1)) near 1 carries state over long spans
};

// The GPU scans time in chunks: sequences of one step, shorter than a chunk, ending mid-chunk and on a chunk
// boundary; channel counts off the warp width; and long sequences whose state lives for hundreds of steps.
TEST(GpuOps, RecurrenceForwardAndBackward) {
  RATPLUS_REQUIRE_GPU();
  for (const RecurrenceCase& rc : std::vector<RecurrenceCase>{{3, 77, 130, 0},
                                                              {1, 1, 7, 0},
                                                              {2, 3, 33, 0},
                                                              {3, 5, 31, 0},
                                                              {2, 256, 64, 0},
                                                              {1, 1000, 96, 3},
                                                              {2, 4097, 45, 2},
                                                              {1, 16384, 40, 6}}) {
    SCOPED_TRACE(testing::Message() << "batch " << rc.batch << ", T " << rc.seq << ", channels " << rc.ch);
    const int64_t batch = rc.batch, rows = rc.batch * rc.seq, ch = rc.ch;
    Pair z(rows, 3 * ch, 14, 1, 1);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 2 * ch; c < 3 * ch; ++c) z.h.ptr<float>()[r * z.h.ld + c] += static_cast<float>(rc.gate_bias);
    copy_tensor(z.d, z.h);
    const auto slice = [&](const Tensor& t, int i) { return t.cols_slice(i * ch, ch); };
    Pair ko(rows, ch, 15), vo(rows, ch, 16), dko(rows, ch, 17), dvo(rows, ch, 18);
    Pair dz(rows, 3 * ch, 19, 1, 2);
    recurrence_forward(ko.h, vo.h, slice(z.h, 0), slice(z.h, 1), slice(z.h, 2), batch);
    recurrence_forward(ko.d, vo.d, slice(z.d, 0), slice(z.d, 1), slice(z.d, 2), batch);
    ko.expect_matches(1e-5, "k recurrence");
    vo.expect_matches(1e-5, "v recurrence");
    recurrence_backward(slice(dz.h, 0), slice(dz.h, 1), slice(dz.h, 2), dko.h, dvo.h, ko.h, vo.h, slice(z.h, 0),
                        slice(z.h, 1), slice(z.h, 2), batch);
    recurrence_backward(slice(dz.d, 0), slice(dz.d, 1), slice(dz.d, 2), dko.d, dvo.d, ko.d, vo.d, slice(z.d, 0),
                        slice(z.d, 1), slice(z.d, 2), batch);
    dz.expect_matches(1e-4, "recurrence backward");
  }
}

// From a nonzero initial state, writing the final state: the sequence ends mid-chunk, on a chunk boundary
// and past several block steps (the final state is the last row's, not the padded scan's end).
TEST(GpuOps, RecurrenceWithInitialAndFinalState) {
  RATPLUS_REQUIRE_GPU();
  for (const int64_t seq : {int64_t{1}, int64_t{8}, int64_t{77}, int64_t{128}, int64_t{300}}) {
    SCOPED_TRACE(testing::Message() << "T " << seq);
    const int64_t batch = 3, ch = 45, rows = batch * seq;
    Pair z(rows, 3 * ch, 31, 1, 1), start(batch, 2 * ch, 32, 1, 1), end(batch, 2 * ch, 33, 1, 1);
    Pair ko(rows, ch, 34), vo(rows, ch, 35);
    const auto slice = [&](const Tensor& t, int i) { return t.cols_slice(i * ch, ch); };
    const auto halves = [&](const Tensor& t) { return RecurrenceState{slice(t, 0), slice(t, 1)}; };
    recurrence_forward(ko.h, vo.h, slice(z.h, 0), slice(z.h, 1), slice(z.h, 2), batch, halves(start.h), halves(end.h));
    recurrence_forward(ko.d, vo.d, slice(z.d, 0), slice(z.d, 1), slice(z.d, 2), batch, halves(start.d), halves(end.d));
    ko.expect_matches(1e-5, "k recurrence");
    vo.expect_matches(1e-5, "v recurrence");
    end.expect_matches(1e-5, "final state");
  }
}

TEST(GpuOps, Rope) {
  RATPLUS_REQUIRE_GPU();
  const int64_t seq = 53, heads = 3, dh = 128;
  Pair x(2 * seq, heads * dh, 20, 1, 4), y(2 * seq, heads * dh, 21);
  rope(y.h, x.h, seq, heads, 10000.0, 4000, false);
  rope(y.d, x.d, seq, heads, 10000.0, 4000, false);
  y.expect_matches(1e-5, "rope");
  rope(y.h, y.h, seq, heads, 10000.0, 4000, true);
  rope(y.d, y.d, seq, heads, 10000.0, 4000, true);
  y.expect_matches(1e-5, "rope inverse");
}

TEST(GpuOps, CrossEntropyWithIgnoredRows) {
  RATPLUS_REQUIRE_GPU();
  const int64_t rows = 45, vocab = 32001;
  Pair logits(rows, vocab, 22, 3), loss(1, rows, 23);
  std::vector<int32_t> targets(rows);
  for (int64_t i = 0; i < rows; ++i) targets[i] = i % 7 == 3 ? -1 : static_cast<int32_t>(splitmix64(i) % vocab);
  Buffer device_targets(rows * 4, Device::cuda);
  copy_tensor(Tensor{device_targets.data(), 1, rows, rows, DType::i32, Device::cuda},
              Tensor{targets.data(), 1, rows, rows, DType::i32, Device::cpu});
  cross_entropy(loss.h, logits.h, targets.data(), 0.125);
  cross_entropy(loss.d, logits.d, static_cast<int32_t*>(device_targets.data()), 0.125);
  loss.expect_matches(1e-5, "loss");
  logits.expect_matches(1e-6, "dlogits");
}

// The vocabulary-parallel steps on a slice of an odd vocabulary: partials of two slices, then the finish
// with both, the second slice a strided column view.
TEST(GpuOps, CrossEntropyOverVocabularySlices) {
  RATPLUS_REQUIRE_GPU();
  const int64_t rows = 33, vocab = 16001, cut = 7919;
  Pair logits(rows, vocab, 28, 3), loss(1, rows, 29), partials(4, rows, 30);
  std::vector<int32_t> targets(rows);
  for (int64_t i = 0; i < rows; ++i) targets[i] = i % 5 == 1 ? -1 : static_cast<int32_t>(splitmix64(i + 7) % vocab);
  Buffer device_targets(rows * 4, Device::cuda);
  copy_tensor(Tensor{device_targets.data(), 1, rows, rows, DType::i32, Device::cuda},
              Tensor{targets.data(), 1, rows, rows, DType::i32, Device::cpu});
  const int64_t begin[2] = {0, cut}, width[2] = {cut, vocab - cut};
  for (bool gpu : {false, true}) {
    Tensor z = gpu ? logits.d : logits.h, p = gpu ? partials.d : partials.h, l = gpu ? loss.d : loss.h;
    const int32_t* t = gpu ? static_cast<int32_t*>(device_targets.data()) : targets.data();
    for (int s = 0; s < 2; ++s)
      cross_entropy_partials(p.rows_slice(2 * s, 2), z.cols_slice(begin[s], width[s]), t, begin[s]);
    for (int s = 0; s < 2; ++s) cross_entropy_finish(l, z.cols_slice(begin[s], width[s]), t, begin[s], p, 0.25);
  }
  partials.expect_matches(1e-4, "partials");
  loss.expect_matches(1e-5, "loss");
  logits.expect_matches(1e-6, "dlogits");
}

TEST(GpuOps, EmbeddingOfAVocabularySlice) {
  RATPLUS_REQUIRE_GPU();
  const int64_t rows = 41, vocab = 301, width = 77, first = 100;
  Pair table(width, 65, 31), out(rows, 65, 32), dtable(width, 65, 33), dout(rows, 65, 34);
  std::vector<int32_t> tokens(rows);
  for (int64_t i = 0; i < rows; ++i) tokens[i] = static_cast<int32_t>(splitmix64(i + 3) % vocab);
  Buffer device_tokens(rows * 4, Device::cuda);
  copy_tensor(Tensor{device_tokens.data(), 1, rows, rows, DType::i32, Device::cuda},
              Tensor{tokens.data(), 1, rows, rows, DType::i32, Device::cpu});
  embedding_forward(out.h, tokens.data(), table.h, first);
  embedding_forward(out.d, static_cast<int32_t*>(device_tokens.data()), table.d, first);
  out.expect_matches(0, "embedding slice");
  embedding_backward(dtable.h, tokens.data(), dout.h, first);
  embedding_backward(dtable.d, static_cast<int32_t*>(device_tokens.data()), dout.d, first);
  dtable.expect_matches(1e-5, "embedding slice gradient");
}

TEST(GpuOps, AdamWAndSumOfSquares) {
  RATPLUS_REQUIRE_GPU();
  const int64_t n = 100003;
  Pair p(1, n, 24), g(1, n, 25), m(1, n, 26, 0.01), v(1, n, 27, 0.01);
  for (Pair* x : {&v}) {  // second moments are non-negative
    for (int64_t i = 0; i < n; ++i) x->h.ptr<float>()[i] = std::abs(x->h.ptr<float>()[i]);
    copy_tensor(x->d, x->h);
  }
  AdamWStep s;
  s.lr = 1e-3;
  s.weight_decay = 0.1;
  s.grad_scale = 0.7;
  s.t = 3;
  adamw_update(p.h, g.h, m.h, v.h, s);
  adamw_update(p.d, g.d, m.d, v.d, s);
  p.expect_matches(1e-6, "params");
  m.expect_matches(1e-6, "m");
  v.expect_matches(1e-6, "v");
  EXPECT_NEAR(sum_of_squares(g.d), sum_of_squares(g.h), 1e-5 * sum_of_squares(g.h));
}

// Queries q_pos0 … q_pos0 + q_len − 1 of each sequence over keys 0 … k_len − 1.
struct AttentionCase {
  const char* name;
  int64_t batch, q_len, q_pos0, k_len, dh;
  std::vector<KeySet> heads;
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

// The arguments of a case over q, k, v, out, lse (CPU or GPU tensors alike).
AttentionArgs attention_args(const AttentionCase& c, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& out, const Tensor& lse) {
  return {.q = q, .batch = c.batch, .q_len = c.q_len, .q_pos0 = c.q_pos0, .k = k, .v = v, .k_len = c.k_len,
          .head_keys = c.heads, .out = out, .lse = lse};
}

class GpuAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(GpuAttention, ForwardAndBackwardMatchCpu) {
  RATPLUS_REQUIRE_GPU();
  const AttentionCase& c = GetParam();
  const int64_t heads = static_cast<int64_t>(c.heads.size()), width = heads * c.dh;
  const int64_t q_rows = c.batch * c.q_len, k_rows = c.batch * c.k_len;
  Pair q(q_rows, width, 27, 1, 1), kv(k_rows, 2 * width, 28, 1, 1), out(q_rows, width, 29), lse(q_rows, heads, 30);
  Pair dout(q_rows, width, 31), dq(q_rows, width, 32, 1, 3), dkv(k_rows, 2 * width, 33, 1, 3);
  const auto slice = [&](const Tensor& t, int i) { return t.cols_slice(i * width, width); };
  const AttentionArgs host = attention_args(c, q.h, slice(kv.h, 0), slice(kv.h, 1), out.h, lse.h);
  const AttentionArgs device = attention_args(c, q.d, slice(kv.d, 0), slice(kv.d, 1), out.d, lse.d);
  attention_forward(host);
  attention_forward(device);
  out.expect_matches(1e-5, "attention out");
  lse.expect_matches(1e-5, "attention lse");
  attention_backward(host, {.dout = dout.h, .dq = dq.h, .dk = slice(dkv.h, 0), .dv = slice(dkv.h, 1)});
  const DeviceWorkspace workspace(attention_backward_workspace(c.batch, c.q_len, c.k_len, heads, width));
  attention_backward(device, {.dout = dout.d, .dq = dq.d, .dk = slice(dkv.d, 0), .dv = slice(dkv.d, 1),
                              .workspace = workspace.t});
  dq.expect_matches(1e-4, "attention dq");
  dkv.expect_matches(1e-4, "attention dk, dv");
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, GpuAttention,
    ::testing::Values(AttentionCase{"dense_dh128", 2, 257, 0, 257, 128, {{1, 0, 0}, {1, 0, 0}}},
                      AttentionCase{"one_head_dh64", 1, 300, 0, 300, 64, {{1, 0, 0}}},
                      AttentionCase{"dilated_not_dividing", 2, 333, 0, 333, 32, {{7, 0, 0}, {64, 0, 0}}},
                      AttentionCase{"window_wider_than_t_with_sinks", 1, 200, 0, 200, 16, {{16, 500, 4}, {5, 3, 2}}},
                      AttentionCase{"local_and_hybrid", 2, 150, 0, 150, 8, {{0, 9, 3}, {1, 0, 0}, {4, 2, 1}, {0, 0, 0}}},
                      AttentionCase{"chunk_dh64", 2, 77, 150, 300, 64, {{1, 0, 0}, {16, 20, 4}}},
                      AttentionCase{"chunk_at_the_end_hybrid", 1, 40, 160, 200, 16, {{0, 9, 3}, {5, 3, 2}, {1, 0, 0}}}),
    [](const auto& info) { return std::string(info.param.name); });

#ifdef RATPLUS_HAVE_CUDA
// The tensor-core path for bf16 activations, called directly so that a declined call fails instead of
// falling back. The inputs are rounded to bf16 once and the CPU reference computes in f32 on the rounded
// values; each result must match to 2 % of the largest |value| of its row within its head.
class GpuFlashAttention : public ::testing::TestWithParam<AttentionCase> {};

// The GPU's result (converted into x.d) against the CPU's x.h: |gpu − cpu| ≤ tol · s, s the largest |cpu|
// among the `group` columns of that row that hold the element, and at least floor times the largest |cpu|
// of the matrix (a query that sees one key has dq = 0 exactly, which the GPU meets only to rounding).
void expect_close(Pair& x, const Tensor& gpu, int64_t group, double tol, double floor, const char* what) {
  if (gpu.data != x.d.data) convert_tensor(x.d, gpu);
  const std::vector<float> got = to_host_floats(x.d);
  double largest = 0;
  for (int64_t r = 0; r < x.h.rows; ++r)
    for (int64_t c = 0; c < x.h.cols; ++c)
      largest = std::max(largest, double(std::abs(x.h.ptr<float>()[r * x.h.ld + c])));
  for (int64_t r = 0; r < x.h.rows; ++r)
    for (int64_t c0 = 0; c0 < x.h.cols; c0 += group) {
      const float* want = x.h.ptr<float>() + r * x.h.ld + c0;
      double scale = floor * largest;
      for (int64_t c = 0; c < group; ++c) scale = std::max(scale, double(std::abs(want[c])));
      for (int64_t c = 0; c < group; ++c)
        ASSERT_NEAR(got[r * x.h.cols + c0 + c], want[c], tol * scale) << what << " at (" << r << ", " << c0 + c << ")";
    }
}

TEST_P(GpuFlashAttention, Bf16MatchesCpu) {
  RATPLUS_REQUIRE_GPU();
  const AttentionCase& c = GetParam();
  const int64_t heads = static_cast<int64_t>(c.heads.size()), width = heads * c.dh, rows = c.batch * c.q_len;
  const int64_t pad = 8;  // strided rows that stay 16-byte aligned
  Pair qkv(rows, 3 * width, 40, 1, pad), dout(rows, width, 41), out(rows, width, 42), lse(rows, heads, 43);
  Pair dqkv(rows, 3 * width, 44, 1, pad);
  const DeviceBf16 qkv16 = round_to_bf16(qkv, 3 * width + pad), dout16 = round_to_bf16(dout, width);
  const DeviceBf16 dqkv16 = round_to_bf16(dqkv, 3 * width + pad);  // garbage the backward must overwrite
  const DeviceBf16 out16(rows, width, width);
  const auto slice = [&](const Tensor& t, int i) { return t.cols_slice(i * width, width); };

  const AttentionArgs host = attention_args(c, slice(qkv.h, 0), slice(qkv.h, 1), slice(qkv.h, 2), out.h, lse.h);
  const AttentionArgs device =
      attention_args(c, slice(qkv16.t, 0), slice(qkv16.t, 1), slice(qkv16.t, 2), out16.t, lse.d);
  attention_forward(host);
  // Each forward kernel alone (the wgmma one where this build and GPU have it), then the dispatch.
  ASSERT_TRUE(cuda::mma_attention_forward(device)) << "the fast path declined";
  expect_close(out, out16.t, c.dh, 2e-2, 1e-2, "attention out (mma.sync)");
  expect_close(lse, lse.d, heads, 1e-3, 0.1, "attention lse (mma.sync)");
  if (cuda::hopper_attention_available()) {
    zero_tensor(out16.t);  // nothing of the first result may pass for the second
    ASSERT_TRUE(cuda::hopper_attention_forward(device)) << "the wgmma forward declined";
    expect_close(out, out16.t, c.dh, 2e-2, 1e-2, "attention out (wgmma)");
    expect_close(lse, lse.d, heads, 1e-3, 0.1, "attention lse (wgmma)");
  }
  ASSERT_TRUE(cuda::flash_attention_forward(device)) << "the fast path declined";

  // The backward reads O (through Δ = rowsum(dO ∘ O)); give the CPU the GPU's bf16 O, which expect_close left
  // in out.d, so that a query with few keys (where dP − Δ cancels) compares kernels, not O's rounding.
  copy_tensor(out.h, out.d);
  attention_backward(host, {.dout = dout.h, .dq = slice(dqkv.h, 0), .dk = slice(dqkv.h, 1), .dv = slice(dqkv.h, 2)});
  const DeviceWorkspace workspace(attention_backward_workspace(c.batch, c.q_len, c.k_len, heads, width));
  ASSERT_TRUE(cuda::flash_attention_backward(device, {.dout = dout16.t, .dq = slice(dqkv16.t, 0),
                                                      .dk = slice(dqkv16.t, 1), .dv = slice(dqkv16.t, 2),
                                                      .workspace = workspace.t}))
      << "the fast path declined";
  expect_close(dqkv, dqkv16.t, c.dh, 2e-2, 1e-2, "attention gradients");
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, GpuFlashAttention,
    ::testing::Values(AttentionCase{"dense_4096", 1, 4096, 0, 4096, 128, {{1, 0, 0}, {1, 0, 0}}},
                      AttentionCase{"dense_1000_batch2", 2, 1000, 0, 1000, 128, {{1, 0, 0}, {1, 0, 0}}},
                      AttentionCase{"dilated_16_and_64", 1, 2000, 0, 2000, 128, {{16, 0, 0}, {64, 0, 0}}},
                      AttentionCase{"dilated_16_window_256_sinks_4", 2, 1500, 0, 1500, 128, {{16, 256, 4}, {16, 256, 4}}},
                      AttentionCase{"local_128_sinks_4_dh64", 1, 1111, 0, 1111, 64, {{0, 128, 4}, {0, 128, 4}}},
                      AttentionCase{"hybrid_per_head_dh64", 2, 777, 0, 777, 64, {{1, 0, 0}, {16, 256, 4}, {0, 128, 4}, {64, 0, 0}}},
                      AttentionCase{"one_head_dh64", 1, 300, 0, 300, 64, {{1, 0, 0}}},
                      AttentionCase{"many_sinks_window_wider_than_t", 1, 700, 0, 700, 64, {{2, 5, 300}, {3, 1000, 2}}}),
    [](const auto& info) { return std::string(info.param.name); });

// The build's default targets sm_90a, so on a Hopper GPU the wgmma forward must be the one that runs.
TEST(GpuHopperAttention, IsAvailableOnHopperInAnSm90aBuild) {
  RATPLUS_REQUIRE_GPU();
  cudaDeviceProp prop;
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  if (prop.major != 9 || prop.minor != 0) GTEST_SKIP() << "not a compute capability 9.0 GPU";
#ifdef RATPLUS_TEST_SM90A
  EXPECT_TRUE(cuda::hopper_attention_available());
#else
  GTEST_SKIP() << "this build has no sm_90a target";
#endif
}

// A chunk (queries from position q_pos0 > 0 over k_len ≠ q_len keys) is the general kernel's.
TEST(GpuFlashAttentionChunks, AreDeclined) {
  RATPLUS_REQUIRE_GPU();
  const AttentionCase c{"chunk", 1, 64, 64, 128, 64, {{1, 0, 0}}};
  const DeviceBf16 q(64, 64, 64), k(128, 64, 64), v(128, 64, 64), out(64, 64, 64);
  Pair lse(64, 1, 45);
  EXPECT_FALSE(cuda::flash_attention_forward(attention_args(c, q.t, k.t, v.t, out.t, lse.d)));
}
#endif

}  // namespace
}  // namespace ratplus::test
