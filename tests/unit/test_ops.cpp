// Each CPU op against a naive double-precision loop written straight from SPEC §2–§3, on awkward sizes
// and strided views; run in f32 (the production type) and f64.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/recurrence.h"
#include "kernels/rope.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

class OpTest : public ::testing::TestWithParam<DType> {
 protected:
  DType dt() const { return GetParam(); }
  double tol() const { return dt() == DType::f32 ? 2e-5 : 1e-12; }
};

TEST_P(OpTest, MatmulAllTransposesOnStridedViews) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t m = 7, k = 13, n = 5;
      Owned a = ta ? random(k, m, 1, 1, dt(), 3) : random(m, k, 1, 1, dt(), 3);
      Owned b = tb ? random(n, k, 2, 1, dt(), 1) : random(k, n, 2, 1, dt(), 1);
      Owned c = random(m, n, 3, 1, dt(), 2);
      Owned expected(m, n);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t p = 0; p < k; ++p) s += get(a, ta ? p : i, ta ? i : p) * get(b, tb ? j : p, tb ? p : j);
          set(expected, i, j, 0.5 * s + 2.0 * get(c, i, j));
        }
      matmul(c, a, ta, b, tb, 0.5, 2.0);
      expect_close(c, expected, tol(), "matmul");
    }
}

// linear_add and linear_gelu against a naive loop: the residual from another tensor and in place.
TEST_P(OpTest, LinearAddAndLinearGelu) {
  const int64_t m = 3, k = 11, n = 6;
  Owned a = random(m, k, 1, 1, dt(), 2), w = random(n, k, 2, 1, dt(), 1), residual = random(m, n, 3, 1, dt());
  Owned y(m, n, dt()), in_place = random(m, n, 3, 1, dt()), pre(m, n, dt()), act(m, n, dt());
  linear_add(y, residual, a, w);
  linear_add(in_place, in_place, a, w);
  linear_gelu(pre, act, a, w);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += get(a, i, p) * get(w, j, p);
      EXPECT_NEAR(get(y, i, j), get(residual, i, j) + s, tol());
      EXPECT_NEAR(get(in_place, i, j), get(residual, i, j) + s, tol());
      EXPECT_NEAR(get(pre, i, j), s, tol());
      EXPECT_NEAR(get(act, i, j), 0.5 * s * (1 + std::erf(s / std::sqrt(2.0))), tol());
    }
}

TEST_P(OpTest, RmsNormForward) {
  const int64_t rows = 9, n = 33;
  Owned x = random(rows, n, 4, 1, dt(), 5), w = random(1, n, 5, 1, dt()), y(rows, n, dt()), rstd(1, rows, dt());
  rmsnorm_forward(y, rstd, x, w, 1e-6);
  Owned expected(rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < n; ++c) ss += get(x, r, c) * get(x, r, c);
    const double inv = 1 / std::sqrt(ss / n + 1e-6);
    for (int64_t c = 0; c < n; ++c) set(expected, r, c, get(x, r, c) * inv * get(w, 0, c));
  }
  expect_close(y, expected, tol(), "rmsnorm");
}

// The recurrence by its definition, in double: every row's k̃ and ṽ ([batch · T, ch] each) and each
// sequence's last state ([batch, 2 · ch]: k̃ then ṽ), from `start` (the same layout; empty: zeros).
struct SequentialRecurrence {
  Owned k, v, end;
  SequentialRecurrence(const Tensor& k_in, const Tensor& v_in, const Tensor& g, int64_t batch, const Tensor& start)
      : k(k_in.rows, k_in.cols), v(k_in.rows, k_in.cols), end(batch, 2 * k_in.cols) {
    const int64_t seq = k_in.rows / batch, ch = k_in.cols;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < ch; ++c) {
        double hk = start.empty() ? 0 : get(start, b, c), hv = start.empty() ? 0 : get(start, b, ch + c);
        for (int64_t t = 0; t < seq; ++t) {
          const int64_t r = b * seq + t;
          const double a = 1 / (1 + std::exp(-get(g, r, c)));
          hk = a * hk + (1 - a) * get(k_in, r, c);
          hv = a * hv + (1 - a) * get(v_in, r, c);
          set(k, r, c, hk);
          set(v, r, c, hv);
        }
        set(end, b, c, hk);
        set(end, b, ch + c, hv);
      }
  }
};

TEST_P(OpTest, RecurrenceForwardMatchesSequentialDefinition) {
  const int64_t batch = 3, seq = 11, ch = 70;  // more channels than one block
  Owned z = random(batch * seq, 3 * ch, 6, 1, dt(), 2);
  const Tensor k = z.t.cols_slice(0, ch), v = z.t.cols_slice(ch, ch), g = z.t.cols_slice(2 * ch, ch);
  Owned ko(batch * seq, ch, dt()), vo(batch * seq, ch, dt());
  recurrence_forward(ko, vo, k, v, g, batch);
  const SequentialRecurrence expected(k, v, g, batch, Tensor{});
  expect_close(ko, expected.k, tol(), "k recurrence");
  expect_close(vo, expected.v, tol(), "v recurrence");
}

TEST_P(OpTest, RecurrenceFromAnInitialStateMatchesSequentialDefinition) {
  const int64_t batch = 2, seq = 9, ch = 67;
  Owned z = random(batch * seq, 3 * ch, 21, 1, dt(), 1), start = random(batch, 2 * ch, 22, 1, dt(), 3);
  Owned end(batch, 2 * ch, dt(), 1);
  const Tensor k = z.t.cols_slice(0, ch), v = z.t.cols_slice(ch, ch), g = z.t.cols_slice(2 * ch, ch);
  Owned ko(batch * seq, ch, dt()), vo(batch * seq, ch, dt());
  recurrence_forward(ko, vo, k, v, g, batch, {start.t.cols_slice(0, ch), start.t.cols_slice(ch, ch)},
                     {end.t.cols_slice(0, ch), end.t.cols_slice(ch, ch)});
  const SequentialRecurrence expected(k, v, g, batch, start);
  expect_close(ko, expected.k, tol(), "k recurrence");
  expect_close(vo, expected.v, tol(), "v recurrence");
  expect_close(end, expected.end, tol(), "final state");
}

// The first T1 rows of each sequence, then the remaining ones from the first part's final state: the same
// operations in the same order as one run over all T rows, so the same bits.
TEST_P(OpTest, RecurrenceInTwoPartsEqualsOneRun) {
  const int64_t batch = 3, seq = 13, first = 5, ch = 70;
  Owned z = random(batch * seq, 3 * ch, 23, 1, dt());
  Owned ko(batch * seq, 2 * ch, dt()), whole_end(batch, 2 * ch, dt());
  const auto kvg = [&](const Tensor& t) {
    return std::array{t.cols_slice(0, ch), t.cols_slice(ch, ch), t.cols_slice(2 * ch, ch)};
  };
  const auto halves = [&](const Tensor& t) { return RecurrenceState{t.cols_slice(0, ch), t.cols_slice(ch, ch)}; };
  const auto [k, v, g] = kvg(z.t);
  recurrence_forward(ko.t.cols_slice(0, ch), ko.t.cols_slice(ch, ch), k, v, g, batch, {}, halves(whole_end));

  Owned state(batch, 2 * ch, dt());
  for (const auto& [t0, n] : {std::pair<int64_t, int64_t>{0, first}, {first, seq - first}}) {
    Owned zp(batch * n, 3 * ch, dt()), out(batch * n, 2 * ch, dt()), next(batch, 2 * ch, dt());
    for (int64_t b = 0; b < batch; ++b) copy_tensor(zp.t.rows_slice(b * n, n), z.t.rows_slice(b * seq + t0, n));
    const auto [kp, vp, gp] = kvg(zp.t);
    recurrence_forward(out.t.cols_slice(0, ch), out.t.cols_slice(ch, ch), kp, vp, gp, batch,
                       t0 == 0 ? RecurrenceState{} : halves(state), halves(next));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < 2 * ch; ++c)
          ASSERT_EQ(get(out, b * n + t, c), get(ko, b * seq + t0 + t, c)) << "sequence " << b << ", row " << t0 + t;
    copy_tensor(state, next);
  }
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < 2 * ch; ++c) ASSERT_EQ(get(state, b, c), get(whole_end, b, c)) << "final state";
}

TEST_P(OpTest, RopeRotatesPairsAndInverseUndoesIt) {
  const int64_t batch = 2, seq = 13, heads = 3, dh = 8;
  Owned x = random(batch * seq, heads * dh, 7, 1, dt(), 4), y(batch * seq, heads * dh, dt());
  rope(y, x, seq, heads, 10000.0, 5, false);
  Owned expected(batch * seq, heads * dh);
  for (int64_t r = 0; r < batch * seq; ++r)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t c = 0; c < dh / 2; ++c) {
        const double angle = (5 + r % seq) * std::pow(10000.0, -2.0 * c / dh);
        const double x1 = get(x, r, h * dh + c), x2 = get(x, r, h * dh + c + dh / 2);
        set(expected, r, h * dh + c, x1 * std::cos(angle) - x2 * std::sin(angle));
        set(expected, r, h * dh + c + dh / 2, x2 * std::cos(angle) + x1 * std::sin(angle));
      }
  expect_close(y, expected, tol(), "rope");
  rope(y, y, seq, heads, 10000.0, 5, true);
  expect_close(y, x, tol(), "rope inverse");
}

TEST_P(OpTest, CrossEntropyAndItsGradient) {
  const int64_t rows = 6, vocab = 29;
  Owned logits = random(rows, vocab, 8, 3, dt(), 1), loss(1, rows, dt());
  Owned original(rows, vocab);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < vocab; ++c) set(original, r, c, get(logits, r, c));
  const std::vector<int32_t> targets = {3, -1, 28, 0, 7, -1};
  cross_entropy(loss, logits, targets.data(), 0.25);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e300, sum = 0;
    for (int64_t c = 0; c < vocab; ++c) mx = std::max(mx, get(original, r, c));
    for (int64_t c = 0; c < vocab; ++c) sum += std::exp(get(original, r, c) - mx);
    const bool ignored = targets[r] < 0;
    EXPECT_NEAR(get(loss, 0, r), ignored ? 0.0 : std::log(sum) + mx - get(original, r, targets[r]), tol() * 10);
    for (int64_t c = 0; c < vocab; ++c) {
      const double p = std::exp(get(original, r, c) - mx) / sum;
      const double grad = ignored ? 0.0 : 0.25 * (p - (c == targets[r]));
      EXPECT_NEAR(get(logits, r, c), grad, tol());
    }
  }
}

// Splitting the vocabulary into column slices (vocabulary parallelism) and exchanging the partials gives
// the losses and gradients of the whole vocabulary in one slice.
TEST_P(OpTest, CrossEntropyOverVocabularySlicesEqualsWhole) {
  const int64_t rows = 7, vocab = 30, cut = 11;  // slices [0, 11) and [11, 30)
  Owned whole = random(rows, vocab, 14, 3, dt()), sliced(rows, vocab, dt());
  copy_tensor(sliced, whole);
  const std::vector<int32_t> targets = {3, -1, 29, 0, 11, 10, 25};
  Owned loss_whole(1, rows, dt()), loss_sliced(1, rows, dt()), partials(4, rows, dt());
  cross_entropy(loss_whole, whole, targets.data(), 0.5);
  const Tensor slice[2] = {Tensor(sliced).cols_slice(0, cut), Tensor(sliced).cols_slice(cut, vocab - cut)};
  const int64_t begin[2] = {0, cut};
  for (int s = 0; s < 2; ++s)
    cross_entropy_partials(Tensor(partials).rows_slice(2 * s, 2), slice[s], targets.data(), begin[s]);
  for (int s = 0; s < 2; ++s)
    cross_entropy_finish(loss_sliced, slice[s], targets.data(), begin[s], partials, 0.5);
  expect_close(loss_sliced, loss_whole, tol(), "loss");
  expect_close(sliced, whole, tol(), "gradient");
}

TEST_P(OpTest, EmbeddingLookupAndScatterAdd) {
  Owned table = random(11, 6, 12, 1, dt(), 2), out(5, 6, dt(), 1), dtable(11, 6, dt());
  const std::vector<int32_t> tokens = {3, 0, 10, 3, 7};
  embedding_forward(out, tokens.data(), table);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(get(out, r, c), get(table, tokens[r], c));
  Owned dout = random(5, 6, 13, 1, dt());
  embedding_backward(dtable, tokens.data(), dout);
  for (int64_t v = 0; v < 11; ++v)
    for (int64_t c = 0; c < 6; ++c) {
      double want = 0;
      for (int64_t r = 0; r < 5; ++r) want += tokens[r] == v ? get(dout, r, c) : 0.0;
      EXPECT_NEAR(get(dtable, v, c), want, tol());
    }
}

// A table holding vocabulary rows [4, 9) reads zeros for other tokens and adds only into its rows.
TEST_P(OpTest, EmbeddingOfAVocabularySlice) {
  Owned table = random(11, 6, 15, 1, dt()), out(5, 6, dt(), 1), dtable(11, 6, dt());
  const Tensor rows = Tensor(table).rows_slice(4, 5), drows = Tensor(dtable).rows_slice(4, 5);
  const std::vector<int32_t> tokens = {3, 4, 10, 8, 6};
  embedding_forward(out, tokens.data(), rows, 4);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 6; ++c) {
      const bool held = tokens[r] >= 4 && tokens[r] < 9;
      EXPECT_EQ(get(out, r, c), held ? get(table, tokens[r], c) : 0.0);
    }
  Owned dout = random(5, 6, 16, 1, dt());
  embedding_backward(drows, tokens.data(), dout, 4);
  for (int64_t v = 0; v < 11; ++v)
    for (int64_t c = 0; c < 6; ++c) {
      double want = 0;
      for (int64_t r = 0; r < 5; ++r) want += tokens[r] == v && v >= 4 && v < 9 ? get(dout, r, c) : 0.0;
      EXPECT_NEAR(get(dtable, v, c), want, tol());
    }
}

TEST_P(OpTest, GeluAndGate) {
  Owned x = random(4, 9, 9, 2, dt()), g = random(4, 9, 10, 2, dt()), y(4, 9, dt()), yg(4, 9, dt());
  gelu_forward(y, x);
  sigmoid_gate_forward(yg, x, g);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 9; ++c) {
      const double v = get(x, r, c);
      EXPECT_NEAR(get(y, r, c), 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), tol());
      EXPECT_NEAR(get(yg, r, c), v / (1 + std::exp(-get(g, r, c))), tol());
    }
}

INSTANTIATE_TEST_SUITE_P(Types, OpTest, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// ---- attention: the key sets and the flash-style kernel against a materialised mask ----

bool in_pattern(const KeySet& s, int64_t t, int64_t j) {
  if (j > t) return false;
  return t - j <= s.window || j < s.sinks || (s.dilation > 0 && (j + 1) % s.dilation == 0);
}

// A caller's mistake is a logic_error whose message names the op and the offending operand.
void expect_rejected(const std::function<void()>& call, const std::string& op, const std::string& what) {
  try {
    call();
    ADD_FAILURE() << op << ": accepted";
  } catch (const std::logic_error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(op + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  }
}

TEST(OpEntryPoints, RejectBadArgumentsNamingTheOp) {
  Owned a = random(4, 6, 1, 1, DType::f32), b = random(5, 6, 2, 1, DType::f32), c(4, 6, DType::f32);
  expect_rejected([&] { matmul(c, a, false, b, false); }, "matmul", "inner dimensions");
  expect_rejected([&] { matmul(c.t.cols_slice(0, 4), a, false, b, true); }, "matmul", "C is 4x4, expected 4x5");
  expect_rejected([&] { matmul(a.t.cols_slice(0, 4), a.t.cols_slice(2, 4), false, Owned(4, 4, DType::f32), false); },
                  "matmul", "C overlaps A");
  expect_rejected([&] { matmul(Owned(4, 5), a, false, b, true); }, "matmul", "C is f64, expected f32");
  expect_rejected([&] { linear_add(a.t.cols_slice(0, 5), a.t.cols_slice(1, 5), a, b); }, "linear_add",
                  "y partly overlaps residual");
  expect_rejected([&] { linear_add(a.t.cols_slice(0, 5), Owned(4, 4, DType::f32), a, b); }, "linear_add",
                  "residual is 4x4, expected 4x5");
  Owned z(6, 9, DType::f32), out(6, 3, DType::f32);
  const Tensor k = z.t.cols_slice(0, 3), v = z.t.cols_slice(3, 3), g = z.t.cols_slice(6, 3);
  expect_rejected([&] { recurrence_forward(out, v, k, v, g, 4); }, "recurrence_forward", "do not split");
  expect_rejected([&] { recurrence_forward(out, z.t.cols_slice(2, 3), k, v, g, 2); }, "recurrence_forward",
                  "v_out overlaps k");
  Owned state(2, 3, DType::f64);
  expect_rejected([&] { recurrence_forward(out, Owned(6, 3, DType::f32), k, v, g, 2, {state, state}); },
                  "recurrence_forward", "the initial state is f64, expected f32");
  expect_rejected([&] { rope(out, out, 3, 1, 1e4, 0, false); }, "rope", "heads of an even width");
}

TEST(KeyRanges, EnumerateExactlyTheSpecSetInOrder) {
  for (int64_t d : {0, 1, 2, 3, 7, 64})
    for (int64_t w : {0, 1, 5, 200})
      for (int64_t p : {0, 1, 4, 9})
        for (int64_t t = 0; t < 90; ++t) {
          const KeySet s{d, w, p};
          std::vector<int64_t> got, want;
          KeyRange ranges[3];
          const int n = key_ranges(s, t, ranges);
          for (int i = 0; i < n; ++i)
            for (int64_t j = ranges[i].begin; j < ranges[i].end; j += ranges[i].step) got.push_back(j);
          for (int64_t j = 0; j <= t; ++j)
            if (in_pattern(s, t, j)) want.push_back(j);
          ASSERT_EQ(got, want) << "D=" << d << " W=" << w << " P=" << p << " t=" << t;
        }
}

// Out and lse of every query straight from the definition, in double: the scores against all k_len keys,
// those outside the query's key set dropped.
void naive_attention(const AttentionArgs& a, Owned& out, Owned& lse) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < a.q_len; ++i) {
        const int64_t row = b * a.q_len + i, t = a.q_pos0 + i;
        std::vector<double> scores(a.k_len, -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < a.k_len; ++j) {
          if (!in_pattern(a.head_keys[h], t, j)) continue;
          double s = 0;
          for (int64_t c = 0; c < dh; ++c) s += get(a.q, row, h * dh + c) * get(a.k, b * a.k_len + j, h * dh + c);
          scores[j] = s / std::sqrt(double(dh));
          mx = std::max(mx, scores[j]);
        }
        double sum = 0;
        for (double s : scores) sum += std::exp(s - mx);
        set(lse, row, h, mx + std::log(sum));
        for (int64_t c = 0; c < dh; ++c) {
          double o = 0;
          for (int64_t j = 0; j < a.k_len; ++j) o += std::exp(scores[j] - mx) / sum * get(a.v, b * a.k_len + j, h * dh + c);
          set(out, row, h * dh + c, o);
        }
      }
}

// Queries q_pos0 … q_pos0 + q_len − 1 of each sequence over keys 0 … k_len − 1 (a whole sequence when
// q_pos0 = 0 and q_len = k_len).
struct AttentionCase {
  const char* name;
  int64_t batch, q_len, q_pos0, k_len, dh;
  std::vector<KeySet> heads;
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionTest, ForwardMatchesMaterialisedMask) {
  const AttentionCase& c = GetParam();
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t heads = static_cast<int64_t>(c.heads.size()), width = c.dh * heads;
    const int64_t q_rows = c.batch * c.q_len, k_rows = c.batch * c.k_len;
    Owned q = random(q_rows, width, 10, 1.5, dt, 3), kv = random(k_rows, 2 * width, 11, 1.5, dt, 1);
    Owned out(q_rows, width, dt), lse(q_rows, heads, dt), expected(q_rows, width), expected_lse(q_rows, heads);
    const AttentionArgs a{.q = q, .batch = c.batch, .q_len = c.q_len, .q_pos0 = c.q_pos0,
                          .k = kv.t.cols_slice(0, width), .v = kv.t.cols_slice(width, width), .k_len = c.k_len,
                          .head_keys = c.heads, .out = out, .lse = lse};
    attention_forward(a);
    naive_attention(a, expected, expected_lse);
    expect_close(out, expected, dt == DType::f32 ? 2e-5 : 1e-11, c.name);
    expect_close(lse, expected_lse, dt == DType::f32 ? 2e-5 : 1e-11, c.name);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, AttentionTest,
    ::testing::Values(AttentionCase{"dense", 2, 150, 0, 150, 8, {{1, 0, 0}, {1, 0, 0}}},
                      AttentionCase{"dilated_not_dividing", 1, 131, 0, 131, 4, {{5, 0, 0}}},
                      AttentionCase{"dilated_window_sinks", 2, 77, 0, 77, 6, {{7, 3, 2}, {3, 10, 1}}},
                      AttentionCase{"window_wider_than_t", 1, 40, 0, 40, 4, {{16, 100, 0}}},
                      AttentionCase{"local", 1, 90, 0, 90, 4, {{0, 9, 3}, {0, 0, 0}}},
                      AttentionCase{"hybrid_heads", 2, 70, 0, 70, 4, {{1, 0, 0}, {64, 0, 0}, {4, 2, 1}, {0, 5, 0}}},
                      AttentionCase{"chunk_in_the_middle", 2, 23, 40, 90, 4, {{1, 0, 0}, {7, 3, 2}}},
                      AttentionCase{"chunk_at_the_end", 1, 30, 70, 100, 6, {{5, 9, 3}, {0, 12, 1}, {1, 0, 0}}},
                      AttentionCase{"one_query", 2, 1, 95, 96, 4, {{16, 4, 2}, {1, 0, 0}}},
                      AttentionCase{"no_queries", 2, 0, 10, 10, 4, {{1, 0, 0}}}),
    [](const auto& info) { return std::string(info.param.name); });

// The last m queries of each sequence of a forward and backward over whole sequences, recomputed as a
// chunk (q_pos0 = T − m) over all T keys: out and lse must be those of the full pass, and the chunk's
// gradients those of the full pass whose dout is zero on the other queries (which then add nothing).
TEST(AttentionChunk, LastQueriesOfFullPassEqualAChunkOverAllKeys) {
  const int64_t batch = 2, seq = 75, m = 19, dh = 4;
  const std::vector<KeySet> heads = {{1, 0, 0}, {5, 6, 2}, {0, 10, 1}};
  const int64_t h = static_cast<int64_t>(heads.size()), width = h * dh, rows = batch * seq;
  Owned qkv = random(rows, 3 * width, 12, 1.5), dout = random(rows, width, 13);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq - m; ++t)
      for (int64_t c = 0; c < width; ++c) set(dout, b * seq + t, c, 0.0);
  const Tensor q = qkv.t.cols_slice(0, width), k = qkv.t.cols_slice(width, width), v = qkv.t.cols_slice(2 * width, width);
  Owned out(rows, width), lse(rows, h), dq(rows, width), dk(rows, width), dv(rows, width);
  const AttentionArgs full{.q = q, .batch = batch, .q_len = seq, .k = k, .v = v, .k_len = seq, .head_keys = heads,
                           .out = out, .lse = lse};
  attention_forward(full);
  attention_backward(full, {.dout = dout, .dq = dq, .dk = dk, .dv = dv});

  // The chunk's queries and dout: rows b · seq + seq − m … of the full ones, packed.
  Owned q_last(batch * m, width), dout_last(batch * m, width);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < width; ++c) {
        set(q_last, b * m + i, c, get(q, b * seq + seq - m + i, c));
        set(dout_last, b * m + i, c, get(dout, b * seq + seq - m + i, c));
      }
  Owned out_last(batch * m, width), lse_last(batch * m, h), dq_last(batch * m, width), dk2(rows, width),
      dv2(rows, width);
  const AttentionArgs chunk{.q = q_last, .batch = batch, .q_len = m, .q_pos0 = seq - m, .k = k, .v = v,
                            .k_len = seq, .head_keys = heads, .out = out_last, .lse = lse_last};
  attention_forward(chunk);
  attention_backward(chunk, {.dout = dout_last, .dq = dq_last, .dk = dk2, .dv = dv2});

  for (int64_t b = 0; b < batch; ++b) {
    const int64_t first = b * seq + seq - m;
    expect_close(out_last.t.rows_slice(b * m, m), out.t.rows_slice(first, m), 1e-12, "out");
    expect_close(lse_last.t.rows_slice(b * m, m), lse.t.rows_slice(first, m), 1e-12, "lse");
    expect_close(dq_last.t.rows_slice(b * m, m), dq.t.rows_slice(first, m), 1e-12, "dq");
  }
  expect_close(dk2, dk, 1e-12, "dk");
  expect_close(dv2, dv, 1e-12, "dv");
}

// Arguments that do not fit together are refused before any work, naming what is wrong.
TEST(AttentionArgs, InconsistentArgumentsAreRefused) {
  const int64_t seq = 8, width = 8;
  const std::vector<KeySet> heads = {{1, 0, 0}, {1, 0, 0}};
  Owned q = random(seq, width, 1), k = random(seq, width, 2), v = random(seq, width, 3), out(seq, width),
        out_f32(seq, width, DType::f32), lse(seq, 2);
  const AttentionArgs good{.q = q, .batch = 1, .q_len = seq, .k = k, .v = v, .k_len = seq, .head_keys = heads,
                           .out = out, .lse = lse};
  EXPECT_NO_THROW(attention_forward(good));
  const auto refused = [](AttentionArgs a, const char* why) {
    try {
      attention_forward(a);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  AttentionArgs a = good;
  a.q_pos0 = 1;
  refused(a, "need keys beyond k_len 8");
  a = good;
  a.k_len = 9;
  refused(a, "k is 8 × 8, expected 9 × 8");
  a = good;
  a.batch = 2;
  refused(a, "q is 8 × 8, expected 16 × 8");
  a = good;
  a.lse = lse.t.cols_slice(0, 1);
  refused(a, "lse is 8 × 1, expected 8 × 2");
  a = good;
  a.out = out_f32;
  refused(a, "out is f32, expected f64");
  a = good;
  const std::vector<KeySet> three = {{1, 0, 0}, {1, 0, 0}, {1, 0, 0}};
  a.head_keys = three;
  refused(a, "not a multiple of 3 heads");
  a = good;
  const std::vector<KeySet> negative = {{1, -1, 0}, {1, 0, 0}};
  a.head_keys = negative;
  refused(a, "negative");
  a = good;
  a.key_layout = KeyLayout::cache;
  refused(a, "the cache key layout needs key and query positions");
  const std::vector<int32_t> positions(16, 0);
  a.key_positions = a.query_positions = positions.data();
  refused(a, "the cache key layout takes one query per sequence, got q_len 8");
  a.key_layout = static_cast<KeyLayout>(2);
  refused(a, "unknown key layout");
}

}  // namespace
}  // namespace ratplus::test
