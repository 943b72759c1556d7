// The fused middle of a decoding step on the GPU (kernels/cache_append.h): one thread per (sequence, head,
// channel pair c, c + dh/2) reads that pair of q, k, v (and g and the f32 state for RAT+), advances the
// recurrence (a = sigmoid(g); k̃ = a·k̃ + (1 − a)·k, ṽ likewise, in f32, the state kept unrounded and k̃
// rounded to the activation type before RoPE, as the full forward rounds it), rotates q and k̃ by the
// sequence's position (angle in double, as the RoPE op), and writes the rotated key and the value into the
// slot of that position in every head group's cache that holds the head, with the position beside it.
// It replaces a recurrence launch, two RoPE launches and per-sequence copies with one launch whose slot
// indices are computed on the device, so the step has no host work and can be captured in a CUDA graph.
// Bytes per channel: 4 activations read (5 with g) and 1 written plus 2 per cache, 8 B of state read and
// written — about 20 B in bf16 for ~40 FLOPs; at batch × d_model channels per layer (4M at batch 2048,
// d 2048: ~80 MB) it is memory-bound and small beside the layer's weights and cache reads.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxCaches = 64;  // head groups of one layer

// A cache as the kernel sees it (32-bit fields keep the argument block small).
struct DeviceCache {
  void *k, *v;
  int32_t* positions;
  int32_t k_ld, v_ld, first_head, heads;
  int32_t dilation, sinks, dilated, ring, first_multiple, capacity;
  __device__ int64_t slot(int64_t j) const {
    return CacheSlots{dilation, sinks, dilated, ring, first_multiple}.slot(j);
  }
};

struct DeviceCaches {
  DeviceCache cache[kMaxCaches];
  int count;
};

template <class A>
__global__ void cache_append_kernel(Mat<A> q_out, Mat<A> q, Mat<A> k, Mat<A> v, Mat<A> g, Mat<float> state_k,
                                    Mat<float> state_v, const int32_t* positions, DeviceCaches caches,
                                    int64_t batch, int64_t heads, int64_t half, double log_base) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch * heads * half) return;
  const int64_t b = i / (heads * half), h = i / half % heads, c = i % half;
  const int64_t j1 = h * 2 * half + c, j2 = j1 + half;
  const int64_t pos = positions[b];
  float k1 = k(b, j1), k2 = k(b, j2), v1 = v(b, j1), v2 = v(b, j2);
  if (g.p) {  // one recurrence step from the state, which it replaces
    const float a1 = sigmoid(g(b, j1)), a2 = sigmoid(g(b, j2));
    k1 = a1 * state_k(b, j1) + (1.0f - a1) * k1;
    k2 = a2 * state_k(b, j2) + (1.0f - a2) * k2;
    v1 = a1 * state_v(b, j1) + (1.0f - a1) * v1;
    v2 = a2 * state_v(b, j2) + (1.0f - a2) * v2;
    state_k.set(b, j1, k1);
    state_k.set(b, j2, k2);
    state_v.set(b, j1, v1);
    state_v.set(b, j2, v2);
    k1 = to_float(from_float<A>(k1));
    k2 = to_float(from_float<A>(k2));
  }
  double s, co;
  sincos(static_cast<double>(pos) * exp(-2.0 * c / (2 * half) * log_base), &s, &co);
  const float cs = static_cast<float>(co), sn = static_cast<float>(s);
  const float q1 = q(b, j1), q2 = q(b, j2);
  q_out.set(b, j1, q1 * cs - q2 * sn);
  q_out.set(b, j2, q2 * cs + q1 * sn);
  const A key1 = from_float<A>(k1 * cs - k2 * sn), key2 = from_float<A>(k2 * cs + k1 * sn);
  const A value1 = from_float<A>(v1), value2 = from_float<A>(v2);
  for (int n = 0; n < caches.count; ++n) {
    const DeviceCache& cache = caches.cache[n];
    if (h < cache.first_head || h >= cache.first_head + cache.heads) continue;
    const int64_t row = b * cache.capacity + cache.slot(pos), col = (h - cache.first_head) * 2 * half + c;
    A* kr = static_cast<A*>(cache.k) + row * cache.k_ld;
    A* vr = static_cast<A*>(cache.v) + row * cache.v_ld;
    kr[col] = key1;
    kr[col + half] = key2;
    vr[col] = value1;
    vr[col + half] = value2;
    if (h == cache.first_head && c == 0) cache.positions[row] = static_cast<int32_t>(pos);
  }
}

DeviceCaches device_caches(std::span<const CacheView> views) {
  if (views.size() > kMaxCaches)
    throw std::logic_error("cache_append (CUDA): at most " + std::to_string(kMaxCaches) + " head groups, got " +
                           std::to_string(views.size()));
  DeviceCaches out{};
  out.count = static_cast<int>(views.size());
  for (size_t n = 0; n < views.size(); ++n) {
    const CacheView& c = views[n];
    const CacheSlots& s = c.slots;
    out.cache[n] = {c.k.data, c.v.data, c.positions.ptr<int32_t>(), static_cast<int32_t>(c.k.ld),
                    static_cast<int32_t>(c.v.ld), static_cast<int32_t>(c.first_head), static_cast<int32_t>(c.heads),
                    static_cast<int32_t>(s.dilation), static_cast<int32_t>(s.sinks), static_cast<int32_t>(s.dilated),
                    static_cast<int32_t>(s.ring), static_cast<int32_t>(s.first_multiple),
                    static_cast<int32_t>(s.capacity())};
  }
  return out;
}

}  // namespace

void cache_append(const CacheAppendArgs& a) {
  const int64_t batch = a.q.rows, half = a.q.cols / a.n_heads / 2, n = batch * a.n_heads * half;
  const DeviceCaches caches = device_caches(a.caches);
  with_activation_type(a.q.dtype, __func__, [&]<class A>() {
    cache_append_kernel<A><<<blocks_for(n, kThreads), kThreads, 0, cuda_stream()>>>(
        mat<A>(a.q_out), mat<A>(a.q), mat<A>(a.k), mat<A>(a.v), mat<A>(a.g), mat<float>(a.state.k),
        mat<float>(a.state.v), a.positions.ptr<int32_t>(), caches, batch, a.n_heads, half, std::log(a.rope_base));
  });
  check_launch(__func__);
}

}  // namespace ratplus::cuda
