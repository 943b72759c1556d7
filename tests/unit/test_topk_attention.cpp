// Top-k block attention on the CPU against SPEC §6 written out by hand: for every query and head the blocks
// are scored from the raw keys (explicit loops over each block's keys for the quest minima and maxima or the
// moba mean), the K best earlier blocks chosen by sorting (ties to the lower block), the mask joined with
// local(W, P) and the dilated positions, and a softmax taken over the mask in double. Sizes are awkward on
// purpose: T not a multiple of B, K beyond the block count, B = 1, K = 0, chunks of queries, exact ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

struct Head {
  KeySet keys;
  BlockTopK topk;
};

// Whether key j is in query t's key set, from the definition.
std::vector<char> naive_mask(const AttentionArgs& a, int64_t b, int64_t h, int64_t row, int64_t t) {
  const int64_t dh = a.q.cols / static_cast<int64_t>(a.head_keys.size());
  const KeySet& s = a.head_keys[h];
  const BlockTopK& topk = a.head_blocks[h];
  std::vector<char> mask(t + 1, 0);
  for (int64_t j = 0; j <= t; ++j)
    mask[j] = t - j <= s.window || j < s.sinks || (s.dilation >= 1 && (j + 1) % s.dilation == 0);
  if (!topk.active()) return mask;
  const int64_t B = topk.block, own = t / B;
  std::vector<double> score(own, 0.0);
  for (int64_t blk = 0; blk < own; ++blk) {
    for (int64_t c = 0; c < dh; ++c) {
      const double qc = get(a.q, row, h * dh + c);
      double lo = INFINITY, hi = -INFINITY, sum = 0;
      for (int64_t j = blk * B; j < (blk + 1) * B; ++j) {
        const double kc = get(a.k, b * a.k_len + j, h * dh + c);
        lo = std::min(lo, kc);
        hi = std::max(hi, kc);
        sum += kc;
      }
      score[blk] += topk.score == BlockScore::quest ? std::max(qc * lo, qc * hi) : qc * (sum / double(B));
    }
  }
  std::vector<int64_t> order(own);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return score[x] > score[y]; });
  order.resize(std::min(own, topk.k));
  order.push_back(own);
  for (int64_t blk : order)
    for (int64_t j = blk * B; j <= std::min((blk + 1) * B - 1, t); ++j) mask[j] = 1;
  return mask;
}

// Out and lse of every query: a softmax of the scaled scores over the naive mask, in double.
void naive_topk_attention(const AttentionArgs& a, Owned& out, Owned& lse) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < a.q_len; ++i) {
        const int64_t row = b * a.q_len + i, t = a.q_pos0 + i;
        const std::vector<char> mask = naive_mask(a, b, h, row, t);
        std::vector<double> p(t + 1, 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          if (!mask[j]) continue;
          double s = 0;
          for (int64_t c = 0; c < dh; ++c) s += get(a.q, row, h * dh + c) * get(a.k, b * a.k_len + j, h * dh + c);
          p[j] = s / std::sqrt(double(dh));
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= t; ++j) sum += mask[j] ? std::exp(p[j] - mx) : 0.0;
        set(lse, row, h, mx + std::log(sum));
        for (int64_t c = 0; c < dh; ++c) {
          double o = 0;
          for (int64_t j = 0; j <= t; ++j)
            if (mask[j]) o += std::exp(p[j] - mx) / sum * get(a.v, b * a.k_len + j, h * dh + c);
          set(out, row, h * dh + c, o);
        }
      }
}

struct TopKCase {
  const char* name;
  int64_t batch, q_len, q_pos0, k_len, dh;
  std::vector<Head> heads;
};

void PrintTo(const TopKCase& c, std::ostream* os) { *os << c.name; }

class TopKAttention : public ::testing::TestWithParam<TopKCase> {};

TEST_P(TopKAttention, ForwardMatchesTheDefinition) {
  const TopKCase& c = GetParam();
  const int64_t heads = static_cast<int64_t>(c.heads.size()), width = c.dh * heads;
  std::vector<KeySet> keys;
  std::vector<BlockTopK> blocks;
  for (const Head& h : c.heads) {
    keys.push_back(h.keys);
    blocks.push_back(h.topk);
  }
  Owned q = random(c.batch * c.q_len, width, 20, 1.5), kv = random(c.batch * c.k_len, 2 * width, 21, 1.5);
  Owned out(q.t.rows, width), lse(q.t.rows, heads), expected(q.t.rows, width), expected_lse(q.t.rows, heads);
  const AttentionArgs a{.q = q, .batch = c.batch, .q_len = c.q_len, .q_pos0 = c.q_pos0,
                        .k = kv.t.cols_slice(0, width), .v = kv.t.cols_slice(width, width), .k_len = c.k_len,
                        .head_keys = keys, .head_blocks = blocks, .out = out, .lse = lse};
  attention_forward(a);
  naive_topk_attention(a, expected, expected_lse);
  expect_close(out, expected, 1e-11, c.name);
  expect_close(lse, expected_lse, 1e-11, c.name);
}

constexpr BlockScore quest = BlockScore::quest, moba = BlockScore::moba;

INSTANTIATE_TEST_SUITE_P(
    Patterns, TopKAttention,
    ::testing::Values(
        TopKCase{"quest_and_moba_t_not_a_multiple_of_b", 2, 50, 0, 50, 6,
                 {{{0, 0, 0}, {8, 3, quest}}, {{0, 0, 0}, {5, 2, moba}}}},
        TopKCase{"block_of_one", 1, 30, 0, 30, 4, {{{0, 0, 0}, {1, 4, quest}}, {{0, 0, 0}, {1, 3, moba}}}},
        TopKCase{"k_beyond_the_blocks", 1, 40, 0, 40, 4, {{{0, 0, 0}, {16, 10, quest}}, {{0, 0, 0}, {7, 9, moba}}}},
        TopKCase{"window_sinks_dilation", 2, 45, 0, 45, 4,
                 {{{3, 2, 1}, {4, 0, quest}}, {{4, 5, 3}, {6, 2, moba}}, {{0, 7, 0}, {5, 1, quest}}}},
        TopKCase{"beside_dense_and_dilated_heads", 1, 37, 0, 37, 4,
                 {{{1, 0, 0}, {}}, {{0, 0, 0}, {4, 2, quest}}, {{5, 1, 1}, {}}}},
        TopKCase{"chunk_of_queries", 2, 20, 40, 60, 4, {{{0, 0, 0}, {7, 2, quest}}, {{2, 0, 0}, {3, 3, moba}}}}),
    [](const auto& info) { return std::string(info.param.name); });

// Keys repeating with period B make every complete block's summary equal, so all earlier blocks tie: the
// lowest K are attended (seen in the output: it equals attention over exactly those keys).
TEST(TopKAttentionTies, GoToTheLowerBlocks) {
  const int64_t T = 29, B = 4, K = 2, dh = 4;
  for (BlockScore score : {quest, moba}) {
    Owned q = random(T, dh, 30), k(T, dh), v = random(T, dh, 31), out(T, dh), lse(T, 1), expected(T, dh),
          expected_lse(T, 1);
    const Owned base = random(B, dh, 32);
    for (int64_t j = 0; j < T; ++j)
      for (int64_t c = 0; c < dh; ++c) set(k, j, c, get(base, j % B, c));
    const std::vector<KeySet> keys = {{0, 0, 0}};
    const std::vector<BlockTopK> topk = {{B, K, score}};
    attention_forward({.q = q, .q_len = T, .k = k, .v = v, .k_len = T, .head_keys = keys, .head_blocks = topk,
                       .out = out, .lse = lse});
    // The same queries under an explicit key set: blocks 0 … K − 1 and the own block, as P = K·B sinks
    // plus a window back to the own block's start.
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<KeySet> fixed = {{0, t % B, K * B}};
      const Tensor qt = q.t.rows_slice(t, 1), ot = expected.t.rows_slice(t, 1), lt = expected_lse.t.rows_slice(t, 1);
      attention_forward({.q = qt, .q_len = 1, .q_pos0 = t, .k = k, .v = v, .k_len = T, .head_keys = fixed,
                         .out = ot, .lse = lt});
    }
    expect_close(out, expected, 1e-12, score == quest ? "quest ties" : "moba ties");
    expect_close(lse, expected_lse, 1e-12, score == quest ? "quest ties" : "moba ties");
  }
}

// Top-k attention is for inference: its backward is refused, as are malformed top-k arguments.
TEST(TopKAttentionArgs, BackwardAndBadArgumentsAreRefused) {
  const int64_t T = 8, dh = 4;
  Owned q = random(T, dh, 1), k = random(T, dh, 2), v = random(T, dh, 3), out(T, dh), lse(T, 1), d(T, dh);
  const std::vector<KeySet> keys = {{0, 0, 0}};
  const std::vector<BlockTopK> topk = {{2, 1, quest}}, two = {{2, 1, quest}, {2, 1, quest}}, negative = {{2, -1, quest}};
  const AttentionArgs a{.q = q, .q_len = T, .k = k, .v = v, .k_len = T, .head_keys = keys, .head_blocks = topk,
                        .out = out, .lse = lse};
  attention_forward(a);
  const auto refused = [](const std::function<void()>& call, const char* why) {
    try {
      call();
      ADD_FAILURE() << "accepted: " << why;
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refused([&] { attention_backward(a, {.dout = d, .dq = d, .dk = d, .dv = d}); }, "no backward");
  AttentionArgs bad = a;
  bad.head_blocks = two;
  refused([&] { attention_forward(bad); }, "2 top-k entries for 1 heads");
  bad.head_blocks = negative;
  refused([&] { attention_forward(bad); }, "negative field");
}

}  // namespace
}  // namespace ratplus::test
