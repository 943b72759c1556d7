// Causal attention over structured key sets (SPEC §3, step 6 of §2), forward and backward.
// A head's key set for query t is the union of three disjoint, ordered ranges:
//   sinks    [0, min(P, lo))                          (initial tokens)
//   dilated  j ≡ D − 1 (mod D), P ≤ j < lo            (every D-th recurrent summary; absent when D = 0)
//   near     [lo, t] with lo = max(0, t − W)          (the local window, always containing t)
// dense = {D 1, W 0, P 0}; local(W, P) = {D 0, W, P}. Work per query is the size of its key set.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"

#ifdef __CUDACC__
#define RATPLUS_HOST_DEVICE __host__ __device__
#else
#define RATPLUS_HOST_DEVICE
#endif

namespace ratplus {

struct KeySet {
  int64_t dilation = 1;  // D; 0 = no dilated term
  int64_t window = 0;    // W
  int64_t sinks = 0;     // P
  bool operator==(const KeySet&) const = default;
};

struct KeyRange {
  int64_t begin, end, step;  // begin, begin + step, … < end
};

// The (at most three) ranges of query t, in increasing key order; returns how many were written.
RATPLUS_HOST_DEVICE inline int key_ranges(const KeySet& s, int64_t t, KeyRange out[3]) {
  const int64_t lo = s.window >= t ? 0 : t - s.window;
  int n = 0;
  const int64_t sink_end = s.sinks < lo ? s.sinks : lo;
  if (sink_end > 0) out[n++] = {0, sink_end, 1};
  if (s.dilation > 0) {
    const int64_t d = s.dilation;
    const int64_t first = (s.sinks + d) / d * d - 1;  // smallest j ≥ P with (j + 1) mod D = 0
    if (first < lo) out[n++] = {first, lo, d};
  }
  out[n++] = {lo, t + 1, 1};
  return n;
}

// q, k, v, out: [batch · T, H · dh] (row b·T + t; may be column slices); lse: [batch · T, H] receives the
// log-sum-exp of each query's scaled scores. head_keys has one KeySet per head.
void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch,
                       std::span<const KeySet> head_keys);

// Overwrites dq, dk, dv (which may be column slices of a larger gradient).
void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, int64_t batch,
                        std::span<const KeySet> head_keys);

}  // namespace ratplus
