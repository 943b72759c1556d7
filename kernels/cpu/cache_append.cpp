// CPU cache_append: the recurrence op over one-step sequences from the state, the RoPE op row by row at
// each sequence's position, then copies into the caches' slots — the ops the full forward runs, so the
// cache holds exactly the full forward's keys and values.
#include <vector>

#include "kernels/cache_append.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_ops.h"

namespace ratplus::cpu {

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
        for (int64_t i = 0; i < cols; ++i) {
          at<T>(c.k, row, i) = at<T>(k_rot, b, c0 + i);
          at<T>(c.v, row, i) = at<T>(v, b, c0 + i);
        }
        c.positions.ptr<int32_t>()[row] = positions[b];
      }
    }
  });
}

}  // namespace ratplus::cpu
