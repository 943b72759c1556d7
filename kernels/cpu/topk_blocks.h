// Top-k block selection on the CPU (SPEC §6), the pieces every path shares so that they agree to the bit:
// folding a key into its block's summary (full forward, prefill and decoding steps fold the keys of a block
// in position order), scoring a block from its summary, and choosing the query's own block plus the K
// best-scoring earlier blocks (ties to the lower block).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "kernels/attention.h"

namespace ratplus::cpu {

// Folds key (dh channels) into a block's summary (block_summary_width(score, dh) values); `first`: the
// block's first key, which starts the summary.
template <class T>
void fold_key(BlockScore score, T* summary, const T* key, int64_t dh, bool first) {
  if (score == BlockScore::quest) {
    T* lo = summary;
    T* hi = summary + dh;
    for (int64_t c = 0; c < dh; ++c) {
      lo[c] = first ? key[c] : std::min(lo[c], key[c]);
      hi[c] = first ? key[c] : std::max(hi[c], key[c]);
    }
  } else {
    for (int64_t c = 0; c < dh; ++c) summary[c] = first ? key[c] : summary[c] + key[c];
  }
}

// The score of a block of `count` keys for query q: quest Σ_c max(q_c·min_c, q_c·max_c), moba q · mean.
template <class T>
T block_score(BlockScore score, const T* q, const T* summary, int64_t dh, int64_t count) {
  T s = 0;
  if (score == BlockScore::quest) {
    for (int64_t c = 0; c < dh; ++c) s += std::max(q[c] * summary[c], q[c] * summary[dh + c]);
  } else {
    for (int64_t c = 0; c < dh; ++c) s += q[c] * (summary[c] / static_cast<T>(count));
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
