// CPU gated recurrence: for each sequence, a sequential scan over time that updates a block of channels
// at once (contiguous in memory, so it vectorises). Sequences × channel blocks run in parallel.
#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

namespace {

constexpr int64_t kChannelBlock = 64;

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

}  // namespace

void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                        int64_t batch, const RecurrenceState& initial, const RecurrenceState& final_state) {
  with_cpu_float(k.dtype, __func__, [&]<class T>() {
    const int64_t seq = k.rows / batch, channels = k.cols;
    const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t c0 = blk * kChannelBlock, c1 = std::min(channels, c0 + kChannelBlock);
        T hk[kChannelBlock] = {}, hv[kChannelBlock] = {};
        if (!initial.empty())
          for (int64_t c = c0; c < c1; ++c) {
            hk[c - c0] = at<T>(initial.k, b, c);
            hv[c - c0] = at<T>(initial.v, b, c);
          }
        for (int64_t t = 0; t < seq; ++t) {
          const int64_t r = b * seq + t;
          for (int64_t c = c0; c < c1; ++c) {
            const T a = sigmoid(at<T>(g, r, c));
            hk[c - c0] = a * hk[c - c0] + (T(1) - a) * at<T>(k, r, c);
            hv[c - c0] = a * hv[c - c0] + (T(1) - a) * at<T>(v, r, c);
            at<T>(k_out, r, c) = hk[c - c0];
            at<T>(v_out, r, c) = hv[c - c0];
          }
        }
        if (!final_state.empty())
          for (int64_t c = c0; c < c1; ++c) {
            at<T>(final_state.k, b, c) = hk[c - c0];
            at<T>(final_state.v, b, c) = hv[c - c0];
          }
      }
    }
  });
}

void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v,
                         const Tensor& g, int64_t batch) {
  with_cpu_float(k.dtype, __func__, [&]<class T>() {
    const int64_t seq = k.rows / batch, channels = k.cols;
    const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t c0 = blk * kChannelBlock, c1 = std::min(channels, c0 + kChannelBlock);
        T carry_k[kChannelBlock] = {}, carry_v[kChannelBlock] = {};  // a_{t+1} λ_{t+1}
        for (int64_t t = seq - 1; t >= 0; --t) {
          const int64_t r = b * seq + t;
          for (int64_t c = c0; c < c1; ++c) {
            const T a = sigmoid(at<T>(g, r, c));
            const T lk = at<T>(dk_out, r, c) + carry_k[c - c0];
            const T lv = at<T>(dv_out, r, c) + carry_v[c - c0];
            const T prev_k = t > 0 ? at<T>(k_out, r - 1, c) : T(0);
            const T prev_v = t > 0 ? at<T>(v_out, r - 1, c) : T(0);
            const T da = lk * (prev_k - at<T>(k, r, c)) + lv * (prev_v - at<T>(v, r, c));
            at<T>(dk, r, c) = (T(1) - a) * lk;
            at<T>(dv, r, c) = (T(1) - a) * lv;
            at<T>(dg, r, c) = da * a * (T(1) - a);
            carry_k[c - c0] = a * lk;
            carry_v[c - c0] = a * lv;
          }
        }
      }
    }
  });
}

}  // namespace ratplus::cpu
