// CPU attention, flash-style: for each query, keys are visited range by range (kernels/attention.h) in
// tiles of up to 64; each tile's scores update a running max, a running sum and the output accumulator
// (online softmax), so no T × T matrix exists and excluded keys cost nothing. The backward recomputes the
// probabilities from the saved log-sum-exp. (sequence, head) pairs run in parallel; within a pair, keys
// are written by one thread only, so the backward needs no atomics.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/backend.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace ratplus {

namespace {

constexpr int64_t kTile = 64;

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Calls f(j) for every key of query t, in order.
template <class F>
void for_each_key(const KeySet& keys, int64_t t, F&& f) {
  KeyRange ranges[3];
  const int n = key_ranges(keys, t, ranges);
  for (int i = 0; i < n; ++i)
    for (int64_t j = ranges[i].begin; j < ranges[i].end; j += ranges[i].step) f(j);
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch,
                       std::span<const KeySet> head_keys) {
  RATPLUS_ROUTE_CUDA(q, cuda::attention_forward(out, lse, q, k, v, batch, head_keys));
  with_cpu_float(q.dtype, __func__, [&]<class T>() {
    const int64_t seq = q.rows / batch, heads = static_cast<int64_t>(head_keys.size()), dh = q.cols / heads;
    const T scale = T(1) / std::sqrt(T(dh));
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        std::vector<int64_t> tile_keys;
        std::vector<T> acc(dh), scores(kTile);
        tile_keys.reserve(kTile);
        for (int64_t t = 0; t < seq; ++t) {
          const T* qt = q.ptr<T>() + (b * seq + t) * q.ld + h * dh;
          T running_max = -INFINITY, running_sum = 0;
          std::fill(acc.begin(), acc.end(), T(0));
          auto flush = [&] {
            T tile_max = running_max;
            for (size_t i = 0; i < tile_keys.size(); ++i) {
              scores[i] = scale * dot(qt, k.ptr<T>() + (b * seq + tile_keys[i]) * k.ld + h * dh, dh);
              tile_max = std::max(tile_max, scores[i]);
            }
            const T rescale = std::exp(running_max - tile_max);
            running_sum *= rescale;
            for (auto& a : acc) a *= rescale;
            for (size_t i = 0; i < tile_keys.size(); ++i) {
              const T p = std::exp(scores[i] - tile_max);
              running_sum += p;
              const T* vj = v.ptr<T>() + (b * seq + tile_keys[i]) * v.ld + h * dh;
              for (int64_t c = 0; c < dh; ++c) acc[c] += p * vj[c];
            }
            running_max = tile_max;
            tile_keys.clear();
          };
          for_each_key(head_keys[h], t, [&](int64_t j) {
            tile_keys.push_back(j);
            if (static_cast<int64_t>(tile_keys.size()) == kTile) flush();
          });
          if (!tile_keys.empty()) flush();
          T* ot = out.ptr<T>() + (b * seq + t) * out.ld + h * dh;
          for (int64_t c = 0; c < dh; ++c) ot[c] = acc[c] / running_sum;
          at<T>(lse, b * seq + t, h) = running_max + std::log(running_sum);
        }
      }
    }
  });
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, int64_t batch,
                        std::span<const KeySet> head_keys) {
  RATPLUS_ROUTE_CUDA(q, cuda::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, batch, head_keys));
  with_cpu_float(q.dtype, __func__, [&]<class T>() {
    const int64_t seq = q.rows / batch, heads = static_cast<int64_t>(head_keys.size()), dh = q.cols / heads;
    const T scale = T(1) / std::sqrt(T(dh));
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        auto row = [&](const Tensor& x, int64_t t) { return x.ptr<T>() + (b * seq + t) * x.ld + h * dh; };
        for (int64_t t = 0; t < seq; ++t) {
          std::fill_n(row(dk, t), dh, T(0));
          std::fill_n(row(dv, t), dh, T(0));
        }
        for (int64_t t = 0; t < seq; ++t) {
          const T* qt = row(q, t);
          const T* gt = row(dout, t);
          T* dqt = row(dq, t);
          std::fill_n(dqt, dh, T(0));
          const T delta = dot(gt, row(out, t), dh);  // Σ_j p_j (dO · v_j)
          const T lse_t = at<T>(lse, b * seq + t, h);
          for_each_key(head_keys[h], t, [&](int64_t j) {
            const T* kj = row(k, j);
            const T p = std::exp(scale * dot(qt, kj, dh) - lse_t);
            const T ds = p * (dot(gt, row(v, j), dh) - delta) * scale;
            T* dkj = row(dk, j);
            T* dvj = row(dv, j);
            for (int64_t c = 0; c < dh; ++c) {
              dqt[c] += ds * kj[c];
              dkj[c] += ds * qt[c];
              dvj[c] += p * gt[c];
            }
          });
        }
      }
    }
  });
}

}  // namespace ratplus
