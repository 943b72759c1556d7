// CPU cache_append: the recurrence op over one-step sequences from the state, the RoPE op row by row at
// each sequence's position, then copies into the caches' slots — the ops the full forward runs, so the
// cache holds exactly the full forward's keys and values (an 8-bit cache: their integers and scales).
// A top-k group's block summaries take each key as it comes (kernels/cpu/topk_blocks.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cache_append.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/topk_blocks.h"

namespace ratplus::cpu {

namespace {

// x[0 … n) on the 8-bit grid of its maximum magnitude (quantize_to_int8): the integers into q, the scale into
// *scale.
template <class T>
void quantize_head(const T* x, int8_t* q, T* scale, int64_t n) {
  T largest = 0;
  for (int64_t i = 0; i < n; ++i) largest = std::max(largest, std::abs(x[i]));
  *scale = largest / T(127);
  for (int64_t i = 0; i < n; ++i)
    q[i] = *scale == 0 ? 0 : static_cast<int8_t>(std::clamp(std::nearbyint(x[i] / *scale), T(-127), T(127)));
}

// Folds the key (the group's c.heads · dh columns) at position j of sequence b into its block's summaries.
template <class T>
void fold_into_summaries(const CacheView& c, int64_t b, int64_t j, const T* key, int64_t dh) {
  const int64_t blocks = c.summary_blocks();
  const int64_t width = block_summary_width(c.topk.score, dh);
  T* row = &at<T>(c.summaries, b * blocks + j / c.topk.block, 0);
  for (int64_t h = 0; h < c.heads; ++h) fold_key(c.topk.score, row + h * width, key + h * dh, dh, j % c.topk.block == 0);
}

}  // namespace

void summarize_prompt_blocks(const CacheView& c, int64_t b, const Tensor& keys, int64_t n) {
  with_cpu_float(keys.dtype, __func__, [&]<class T>() {
    const int64_t dh = keys.cols / c.heads;
    for (int64_t j = 0; j < n; ++j) fold_into_summaries(c, b, j, &at<T>(keys, j, 0), dh);
  });
}

void quantize_to_int8(Tensor q, Tensor scales, const Tensor& x, int64_t head_dim) {
  with_cpu_float(x.dtype, __func__, [&]<class T>() {
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t c = 0; c < x.cols; c += head_dim)
        quantize_head(&at<T>(x, r, c), &at<int8_t>(q, r, c), &at<T>(scales, c / head_dim, r), head_dim);
  });
}

void cache_append(const CacheAppendArgs& a) {
  with_cpu_float(a.q.dtype, __func__, [&]<class T>() {
    const int64_t batch = a.q.rows, width = a.q.cols, dh = width / a.n_heads;
    std::vector<T> keys(batch * width), values(batch * width);
    const auto local = [&](std::vector<T>& x) { return Tensor{x.data(), batch, width, width, a.q.dtype, Device::cpu}; };
    Tensor k = a.k, v = a.v;
    if (!a.state.empty()) {
      cpu::recurrence_forward(local(keys), local(values), a.k, a.v, a.g, batch, a.state, a.state);
      k = local(keys);
      v = local(values);
    }
    std::vector<T> rotated(batch * width);
    const Tensor k_rot = local(rotated);
    const int32_t* positions = a.positions.ptr<int32_t>();
    for (int64_t b = 0; b < batch; ++b) {
      cpu::rope(a.q_out.rows_slice(b, 1), a.q.rows_slice(b, 1), 1, a.n_heads, a.rope_base, positions[b], false);
      cpu::rope(k_rot.rows_slice(b, 1), k.rows_slice(b, 1), 1, a.n_heads, a.rope_base, positions[b], false);
    }
    for (const CacheView& c : a.caches) {
      const int64_t capacity = c.slots.capacity(), c0 = c.first_head * dh, cols = c.heads * dh;
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t row = b * capacity + c.slots.slot(positions[b]);
        if (c.int8()) {
          cpu::quantize_to_int8(c.k.rows_slice(row, 1), c.k_scale.cols_slice(row, 1),
                                k_rot.rows_slice(b, 1).cols_slice(c0, cols), dh);
          cpu::quantize_to_int8(c.v.rows_slice(row, 1), c.v_scale.cols_slice(row, 1),
                                v.rows_slice(b, 1).cols_slice(c0, cols), dh);
        } else {
          for (int64_t i = 0; i < cols; ++i) {
            at<T>(c.k, row, i) = at<T>(k_rot, b, c0 + i);
            at<T>(c.v, row, i) = at<T>(v, b, c0 + i);
          }
        }
        c.positions.ptr<int32_t>()[row] = positions[b];
        if (c.topk.active()) fold_into_summaries(c, b, positions[b], &at<T>(c.k, row, 0), dh);
      }
    }
  });
}

}  // namespace ratplus::cpu
