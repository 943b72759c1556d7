// Attention's entry points (kernels/attention.h): every argument is checked once, then the call runs on
// the CUDA backend or on the CPU reference here.
//
// CPU reference, flash-style: for each query, keys are visited range by range in tiles of up to 64; each
// tile's scores update a running max, a running sum and the output accumulator (online softmax), so no
// q_len × k_len matrix exists and excluded keys cost nothing. The backward recomputes the probabilities
// from the saved log-sum-exp. (sequence, head) pairs run in parallel; within a pair, keys are written by
// one thread only, so the backward needs no atomics.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>
#include <vector>

#include "kernels/backend.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace ratplus {

namespace {

constexpr int64_t kTile = 64;

[[noreturn]] void invalid(const std::string& why) { throw std::logic_error("attention: " + why); }

// `name` must be a rows × cols matrix of `dtype` on q's device.
void check_matrix(const Tensor& t, const char* name, int64_t rows, int64_t cols, DType dtype, const Tensor& q) {
  if (t.empty() && rows * cols > 0) invalid(fmt::format("{} is missing", name));
  if (t.rows != rows || t.cols != cols)
    invalid(fmt::format("{} is {} × {}, expected {} × {}", name, t.rows, t.cols, rows, cols));
  if (t.ld < t.cols) invalid(fmt::format("{} has row stride {} below its {} columns", name, t.ld, t.cols));
  if (t.device != q.device)
    invalid(fmt::format("{} is on {}, q on {}", name, device_name(t.device), device_name(q.device)));
  if (t.dtype != dtype) invalid(fmt::format("{} is {}, expected {}", name, dtype_name(t.dtype), dtype_name(dtype)));
}

void validate(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size());
  if (heads == 0) invalid("no heads (head_keys is empty)");
  if (a.q.cols % heads != 0) invalid(fmt::format("q has {} columns, not a multiple of {} heads", a.q.cols, heads));
  if (a.q.cols == 0) invalid("heads of width 0");
  if (a.batch < 1 || a.q_len < 0) invalid(fmt::format("batch {} and q_len {}", a.batch, a.q_len));
  if (a.key_layout != KeyLayout::sequence) invalid("only the sequence key layout is implemented");
  if (a.q_pos0 < 0 || a.q_pos0 + a.q_len > a.k_len)
    invalid(fmt::format("queries at positions {} … {} need keys beyond k_len {}", a.q_pos0, a.q_pos0 + a.q_len - 1,
                        a.k_len));
  for (const KeySet& s : a.head_keys)
    if (s.dilation < 0 || s.window < 0 || s.sinks < 0)
      invalid(fmt::format("key set D={} W={} P={} has a negative field", s.dilation, s.window, s.sinks));
  if (a.q.dtype != DType::f32 && a.q.dtype != DType::f64 && a.q.dtype != DType::bf16)
    invalid(fmt::format("activations of type {}", dtype_name(a.q.dtype)));
  const int64_t q_rows = a.batch * a.q_len, k_rows = a.batch * a.k_len;
  const DType act = a.q.dtype, stat = a.q.device == Device::cuda ? DType::f32 : act;
  check_matrix(a.q, "q", q_rows, a.q.cols, act, a.q);
  check_matrix(a.k, "k", k_rows, a.q.cols, act, a.q);
  check_matrix(a.v, "v", k_rows, a.q.cols, act, a.q);
  check_matrix(a.out, "out", q_rows, a.q.cols, act, a.q);
  check_matrix(a.lse, "lse", q_rows, heads, stat, a.q);
}

void validate(const AttentionArgs& a, const AttentionGrads& g) {
  validate(a);
  check_matrix(g.dout, "dout", a.out.rows, a.out.cols, a.q.dtype, a.q);
  check_matrix(g.dq, "dq", a.q.rows, a.q.cols, a.q.dtype, a.q);
  check_matrix(g.dk, "dk", a.k.rows, a.k.cols, a.q.dtype, a.q);
  check_matrix(g.dv, "dv", a.v.rows, a.v.cols, a.q.dtype, a.q);
}

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
};

template <class T>
void forward_reference(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size()), dh = a.q.cols / heads;
  const T scale = T(1) / std::sqrt(T(dh));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const HeadView<T> view{a, b, h, dh};
      std::vector<int64_t> tile_keys;
      std::vector<T> acc(dh), scores(kTile);
      tile_keys.reserve(kTile);
      for (int64_t i = 0; i < a.q_len; ++i) {
        const T* qi = view.query(a.q, i);
        T running_max = -INFINITY, running_sum = 0;
        std::fill(acc.begin(), acc.end(), T(0));
        auto flush = [&] {
          T tile_max = running_max;
          for (size_t n = 0; n < tile_keys.size(); ++n) {
            scores[n] = scale * dot(qi, view.key(a.k, tile_keys[n]), dh);
            tile_max = std::max(tile_max, scores[n]);
          }
          const T rescale = std::exp(running_max - tile_max);
          running_sum *= rescale;
          for (auto& x : acc) x *= rescale;
          for (size_t n = 0; n < tile_keys.size(); ++n) {
            const T p = std::exp(scores[n] - tile_max);
            running_sum += p;
            const T* vj = view.key(a.v, tile_keys[n]);
            for (int64_t c = 0; c < dh; ++c) acc[c] += p * vj[c];
          }
          running_max = tile_max;
          tile_keys.clear();
        };
        for_each_key(a.head_keys[h], a.q_pos0 + i, [&](int64_t j) {
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
  validate(a);
  RATPLUS_ROUTE_CUDA(a.q, cuda::attention_forward(a));
  with_cpu_float(a.q.dtype, __func__, [&]<class T>() { forward_reference<T>(a); });
}

void attention_backward(const AttentionArgs& a, const AttentionGrads& g) {
  validate(a, g);
  RATPLUS_ROUTE_CUDA(a.q, cuda::attention_backward(a, g));
  with_cpu_float(a.q.dtype, __func__, [&]<class T>() { backward_reference<T>(a, g); });
}

}  // namespace ratplus
