// Top-k block selection (SPEC §6), the pieces every path shares so that they agree to the bit: folding a
// key into its block's summary (full forward, prefill and decoding steps fold the keys of a block in
// position order), scoring a block from its summary, and choosing the query's own block plus the K
// best-scoring earlier blocks (ties to the lower block). The folding and the scoring are host and device
// code, so that the CUDA kernel (kernels/cuda/topk_attention.cu) computes the CPU's f32 scores exactly and
// selects the same blocks; the choosing is the CPU's (the kernel reaches the same set its own way).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "kernels/attention.h"

namespace ratplus::cpu {

// One channel's summary after the key value x: quest's minimum (upper = false) or maximum (upper = true),
// compared as std::min and std::max compare (the summary stays unless x lies strictly beyond it), or moba's sum.
template <class T>
RATPLUS_HOST_DEVICE T fold_value(BlockScore score, bool upper, T summary, T x) {
  if (score == BlockScore::moba) return summary + x;
  return upper ? (summary < x ? x : summary) : (x < summary ? x : summary);
}

// Folds channel c of a key, x, into a block's summary (block_summary_width(score, dh) values); `first`: the
// block's first key, which starts the summary.
template <class T>
RATPLUS_HOST_DEVICE void fold_channel(BlockScore score, T* summary, int64_t c, int64_t dh, T x, bool first) {
  summary[c] = first ? x : fold_value(score, false, summary[c], x);
  if (score == BlockScore::quest) summary[dh + c] = first ? x : fold_value(score, true, summary[dh + c], x);
}

// Folds a whole key (dh channels) into a block's summary.
template <class T>
void fold_key(BlockScore score, T* summary, const T* key, int64_t dh, bool first) {
  for (int64_t c = 0; c < dh; ++c) fold_channel(score, summary, c, dh, key[c], first);
}

// Channel c of the summary of a block's first `count` keys, x(j) being channel c of its key j: the fold of
// fold_channel over j = 0 … count − 1, kept in registers and written once.
template <class T, class X>
RATPLUS_HOST_DEVICE void summarize_channel(BlockScore score, T* summary, int64_t c, int64_t dh, int64_t count, X&& x) {
  T lo = x(0), hi = lo;
  for (int64_t j = 1; j < count; ++j) {
    const T value = x(j);
    lo = fold_value(score, false, lo, value);
    hi = fold_value(score, true, hi, value);
  }
  summary[c] = lo;
  if (score == BlockScore::quest) summary[dh + c] = hi;
}

// x · y and x / y, each rounded on its own: on the GPU never contracted with a following addition into an
// fma (nvcc contracts by default), so that a score's sum rounds as on the CPU.
template <class T>
RATPLUS_HOST_DEVICE T product(T x, T y) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fmul_rn(x, y);
  else return __dmul_rn(x, y);
#else
  return x * y;
#endif
}

template <class T>
RATPLUS_HOST_DEVICE T quotient(T x, T y) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fdiv_rn(x, y);
  else return __ddiv_rn(x, y);
#else
  return x / y;
#endif
}

// The score of a block of `count` keys for query q: quest Σ_c max(q_c·min_c, q_c·max_c), moba q · mean,
// summed over c in order. The summary is read 8 channels at a time before they are summed, so that a GPU
// thread has 8 (or 16) loads in flight instead of one.
template <class T>
RATPLUS_HOST_DEVICE T block_score(BlockScore score, const T* q, const T* summary, int64_t dh, int64_t count) {
  constexpr int kChunk = 8;
  const bool quest = score == BlockScore::quest;
  T s = 0;
  for (int64_t c0 = 0; c0 < dh; c0 += kChunk) {
    T lo[kChunk], hi[kChunk];
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int i = 0; i < kChunk; ++i) {
      lo[i] = c0 + i < dh ? summary[c0 + i] : T(0);
      hi[i] = quest && c0 + i < dh ? summary[dh + c0 + i] : T(0);
    }
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int i = 0; i < kChunk; ++i) {
      if (c0 + i >= dh) break;
      const T x = q[c0 + i];
      if (quest) {
        const T a = product(x, lo[i]), b = product(x, hi[i]);
        s += a < b ? b : a;  // std::max(a, b)
      } else {
        s += product(x, quotient(lo[i], static_cast<T>(count)));
      }
    }
  }
  return s;
}

// The blocks query t attends to under `topk`: selected[b] for b = 0 … ⌊t/B⌋, the own block always, and of
// the earlier blocks (whose scores are scores[0 … ⌊t/B⌋ − 1]) the K highest, ties to the lower b.
template <class T>
void select_blocks(const BlockTopK& topk, int64_t t, std::span<const T> scores, std::vector<char>& selected,
                   std::vector<int64_t>& order) {
  const int64_t own = t / topk.block;
  selected.assign(own + 1, 0);
  selected[own] = 1;
  order.resize(own);
  std::iota(order.begin(), order.end(), int64_t{0});
  const int64_t keep = std::min(topk.k, own);
  const auto key = [&](int64_t b) { return std::isnan(scores[b]) ? -INFINITY : scores[b]; };  // a strict order
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int64_t x, int64_t y) {
    return key(x) > key(y) || (key(x) == key(y) && x < y);
  });
  for (int64_t i = 0; i < keep; ++i) selected[order[i]] = 1;
}

}  // namespace ratplus::cpu
