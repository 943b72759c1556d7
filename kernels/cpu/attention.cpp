// CPU reference attention, flash-style: for each query, keys are visited range by range (or, from a
// decoding cache, slot by slot with a membership test) in tiles of up to 64; each tile's scores update a
// running max, a running sum and the output accumulator (online softmax), so no q_len × k_len matrix exists
// and excluded keys cost nothing. Top-k block heads (inference only) first choose their blocks per query
// (kernels/cpu/topk_attention.h), then visit the chosen keys the same way. An 8-bit cache's rows are
// dequantized as they are read. The backward recomputes the probabilities from the saved log-sum-exp.
// (sequence, head) pairs run in parallel; within a pair, keys are written by one thread only, so the
// backward needs no atomics. Arguments are checked by the entry points (kernels/attention.cpp).
#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/topk_attention.h"

namespace ratplus::cpu {

namespace {

constexpr int64_t kTile = 64;

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Row pointers of one (sequence b, head h): query i and key j.
template <class T>
struct HeadView {
  const AttentionArgs& a;
  int64_t b, h, dh;
  T* query(const Tensor& x, int64_t i) const { return x.ptr<T>() + (b * a.q_len + i) * x.ld + h * dh; }
  T* key(const Tensor& x, int64_t j) const { return x.ptr<T>() + (b * a.k_len + j) * x.ld + h * dh; }
  T& lse(int64_t i) const { return at<T>(a.lse, b * a.q_len + i, h); }
  // Key or value row j of x: the row itself, or from an 8-bit cache its integers times its scale, into buf.
  const T* row(const Tensor& x, const Tensor& scale, int64_t j, T* buf) const {
    if (x.dtype != DType::i8) return key(x, j);
    const int8_t* q = x.ptr<int8_t>() + (b * a.k_len + j) * x.ld + h * dh;
    const T s = at<T>(scale, h, b * a.k_len + j);
    for (int64_t c = 0; c < dh; ++c) buf[c] = s * T(q[c]);
    return buf;
  }
};

// Calls f(j) for every key row j (of sequence b's k_len rows) that query i of head h attends to: the key
// set's positions in order, or the cache slots whose position is in the key set. A top-k head's selector
// (already given query i) adds its selected blocks to the key set.
template <class T, class F>
void visit_keys(const AttentionArgs& a, int64_t b, int64_t h, int64_t i, const TopKSelector<T>* topk, F&& f) {
  const KeySet& keys = a.head_keys[h];
  if (a.key_layout == KeyLayout::sequence) {
    if (!topk) return for_each_key(keys, a.q_pos0 + i, f);
    for (int64_t j = 0; j <= a.q_pos0 + i; ++j)
      if (topk->attends(j)) f(j);
    return;
  }
  const int64_t t = a.query_positions[b] + i;
  for (int64_t slot = 0; slot < a.k_len; ++slot) {
    const int64_t j = a.key_positions[b * a.k_len + slot];
    if (topk ? topk->attends(j) : in_key_set(keys, t, j)) f(slot);
  }
}

template <class T>
void forward_reference(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  const T scale = T(1) / std::sqrt(T(dh));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const HeadView<T> view{a, b, h, dh};
      std::optional<TopKSelector<T>> topk;
      if (!a.head_blocks.empty() && a.head_blocks[h].active()) topk.emplace(a, b, h);
      std::vector<int64_t> tile_keys;
      std::vector<T> acc(dh), scores(kTile), row_buffer(dh);
      tile_keys.reserve(kTile);
      for (int64_t i = 0; i < a.q_len; ++i) {
        const T* qi = view.query(a.q, i);
        if (topk) topk->select(qi, a.key_layout == KeyLayout::sequence ? a.q_pos0 + i : a.query_positions[b] + i);
        T running_max = -INFINITY, running_sum = 0;
        std::fill(acc.begin(), acc.end(), T(0));
        auto flush = [&] {
          T tile_max = running_max;
          for (size_t n = 0; n < tile_keys.size(); ++n) {
            scores[n] = scale * dot(qi, view.row(a.k, a.k_scale, tile_keys[n], row_buffer.data()), dh);
            tile_max = std::max(tile_max, scores[n]);
          }
          const T rescale = std::exp(running_max - tile_max);
          running_sum *= rescale;
          for (auto& x : acc) x *= rescale;
          for (size_t n = 0; n < tile_keys.size(); ++n) {
            const T p = std::exp(scores[n] - tile_max);
            running_sum += p;
            const T* vj = view.row(a.v, a.v_scale, tile_keys[n], row_buffer.data());
            for (int64_t c = 0; c < dh; ++c) acc[c] += p * vj[c];
          }
          running_max = tile_max;
          tile_keys.clear();
        };
        visit_keys(a, b, h, i, topk ? &*topk : nullptr, [&](int64_t j) {
          tile_keys.push_back(j);
          if (static_cast<int64_t>(tile_keys.size()) == kTile) flush();
        });
        if (!tile_keys.empty()) flush();
        T* oi = view.query(a.out, i);
        for (int64_t c = 0; c < dh; ++c) oi[c] = acc[c] / running_sum;
        view.lse(i) = running_max + std::log(running_sum);
      }
    }
  }
}

template <class T>
void backward_reference(const AttentionArgs& a, const AttentionGrads& g) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  const T scale = T(1) / std::sqrt(T(dh));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const HeadView<T> view{a, b, h, dh};
      for (int64_t j = 0; j < a.k_len; ++j) {
        std::fill_n(view.key(g.dk, j), dh, T(0));
        std::fill_n(view.key(g.dv, j), dh, T(0));
      }
      for (int64_t i = 0; i < a.q_len; ++i) {
        const T* qi = view.query(a.q, i);
        const T* gi = view.query(g.dout, i);
        T* dqi = view.query(g.dq, i);
        std::fill_n(dqi, dh, T(0));
        const T delta = dot(gi, view.query(a.out, i), dh);  // Σ_j p_j (dO · v_j)
        const T lse_i = view.lse(i);
        for_each_key(a.head_keys[h], a.q_pos0 + i, [&](int64_t j) {
          const T* kj = view.key(a.k, j);
          const T p = std::exp(scale * dot(qi, kj, dh) - lse_i);
          const T ds = p * (dot(gi, view.key(a.v, j), dh) - delta) * scale;
          T* dkj = view.key(g.dk, j);
          T* dvj = view.key(g.dv, j);
          for (int64_t c = 0; c < dh; ++c) {
            dqi[c] += ds * kj[c];
            dkj[c] += ds * qi[c];
            dvj[c] += p * gi[c];
          }
        });
      }
    }
  }
}

}  // namespace

void attention_forward(const AttentionArgs& a) {
  with_cpu_float(a.q.dtype, __func__, [&]<class T>() { forward_reference<T>(a); });
}

void attention_backward(const AttentionArgs& a, const AttentionGrads& g) {
  with_cpu_float(a.q.dtype, __func__, [&]<class T>() { backward_reference<T>(a, g); });
}

}  // namespace ratplus::cpu
