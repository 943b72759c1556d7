// Causal attention over structured key sets (SPEC §3, step 6 of §2), forward and backward: the one
// argument struct that every path fills (training, eval, prefill, decode; the CPU reference and the CUDA
// kernels), and the key sets themselves.
//
// A head's key set for the query at position t is the union of three disjoint, ordered ranges:
//   sinks    [0, min(P, lo))                          (initial tokens)
//   dilated  j ≡ D − 1 (mod D), P ≤ j < lo            (every D-th recurrent summary; absent when D = 0)
//   near     [lo, t] with lo = max(0, t − W)          (the local window, always containing t)
// dense = {D 1, W 0, P 0}; local(W, P) = {D 0, W, P}. Work per query is the size of its key set.
// A top-k block head (SPEC §6) adds, per query, the key blocks its BlockTopK selects to that set; the
// selection depends on the keys (kernels/cpu/topk_blocks.h; on the GPU kernels/cuda/topk_attention.h).
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

// How a top-k block head scores the earlier key blocks of its query: "quest" from per-channel minima and
// maxima, "moba" from the mean key.
enum class BlockScore : uint8_t { quest, moba };

// The data-dependent part of a head's key set: blocks of `block` keys aligned at multiples of `block`, of
// which the query's own and the `k` best-scoring earlier ones are attended. block = 0: no top-k term.
struct BlockTopK {
  int64_t block = 0;  // B
  int64_t k = 0;      // K
  BlockScore score = BlockScore::quest;
  bool operator==(const BlockTopK&) const = default;
  RATPLUS_HOST_DEVICE bool active() const { return block > 0; }
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

// Whether key position j is in the key set of query t (the same keys key_ranges lists).
RATPLUS_HOST_DEVICE inline bool in_key_set(const KeySet& s, int64_t t, int64_t j) {
  if (j < 0 || j > t) return false;
  const int64_t lo = s.window >= t ? 0 : t - s.window;
  if (j >= lo || j < s.sinks) return true;               // near, or a sink below lo
  return s.dilation > 0 && (j + 1) % s.dilation == 0;    // P ≤ j < lo
}

// Calls f(j) for every key j of query t, in increasing order.
template <class F>
RATPLUS_HOST_DEVICE void for_each_key(const KeySet& s, int64_t t, F&& f) {
  KeyRange ranges[3];
  const int n = key_ranges(s, t, ranges);
  for (int i = 0; i < n; ++i)
    for (int64_t j = ranges[i].begin; j < ranges[i].end; j += ranges[i].step) f(j);
}

// Where the keys and values come from. Validation refuses any layout an implementation lacks.
enum class KeyLayout : uint8_t {
  // Each sequence's keys 0 … k_len − 1: key j of sequence b is row b · k_len + j of k and v (training,
  // eval, prefill).
  sequence,
  // A compact decoding cache: row b · k_len + s of k and v holds the key at absolute position
  // key_positions[b · k_len + s] (−1: an empty slot), in any order; the one query of sequence b (q_len = 1)
  // sits at position query_positions[b] and attends to the cached keys in its key set. Forward only. On the
  // GPU the slots are split into runs of kCacheSplitSlots, each run's partial softmax written to the
  // workspace and the runs merged (flash-decoding), so a long cache fills the GPU at a small batch.
  cache,
};

// One call's arguments. Tensors are [rows, H · dh] matrices (they may be column slices, rows ld apart);
// H = head_keys.size() and dh = q.cols / H. Query i of sequence b is row b · q_len + i of q, out and lse
// and sits at position q_pos0 + i, attending to the keys of that position's key set; those keys must
// exist: q_pos0 + q_len ≤ k_len. Training and eval have q_pos0 = 0 and k_len = q_len; a chunked prefill
// has q_pos0 > 0.
struct AttentionArgs {
  Tensor q;
  int64_t batch = 1, q_len = 0, q_pos0 = 0;
  KeyLayout key_layout = KeyLayout::sequence;
  Tensor k, v;
  int64_t k_len = 0;
  std::span<const KeySet> head_keys;  // one per head
  // Empty, or one per head: the top-k block term of each head's key set (forward only).
  std::span<const BlockTopK> head_blocks = {};
  // KeyLayout::cache with top-k heads (whose cache holds position j in slot j): each sequence's block
  // summaries, rows b · blocks + block, block_summary_width(score, dh) columns per head, of the statistics
  // type (see kernels/cpu/topk_blocks.h).
  Tensor block_summaries = {};
  // KeyLayout::cache with top-k heads on the GPU: i32 [H, batch · k_len] scratch (planned by the caller) into
  // which each head's attended slots are selected — slot s holds its position if the query attends to it,
  // else −1 — before the cache kernel reads them.
  Tensor selection = {};
  // KeyLayout::cache with an 8-bit cache (kernels/cache_append.h): k and v are i8, and k_scale, v_scale
  // [H, batch · k_len] (the statistics type) hold each slot's scale per head; empty otherwise.
  Tensor k_scale = {}, v_scale = {};
  // KeyLayout::cache only, in the memory of the tensors' device: [batch · k_len] and [batch] positions.
  const int32_t* key_positions = nullptr;
  const int32_t* query_positions = nullptr;
  // Written by the forward, read by the backward. lse: [batch · q_len, H], each query's log-sum-exp of
  // its scaled scores, f32 (on the CPU the compute type: f64 when checking gradients).
  Tensor out, lse;
  // KeyLayout::cache on the GPU: f32 [1, ≥ cache_attention_workspace(…)] for the runs' partial results
  // (planned by the caller, so that the call allocates nothing); unused otherwise.
  Tensor workspace = {};
  void* stream = nullptr;  // cudaStream_t for the CUDA kernels; nullptr = the GPU context's stream
};

// The backward's own tensors: dout like out; dq, dk, dv like q, k, v, overwritten (keys no query sees
// get zero); on the GPU an f32 workspace [1, ≥ attention_backward_workspace(…)] for its accumulators (the
// caller plans it with the activations, so the backward allocates nothing; unused on the CPU).
struct AttentionGrads {
  Tensor dout, dq, dk, dv;
  Tensor workspace = {};
};

// Elements of the f32 workspace a GPU backward needs for `batch` sequences of q_len queries and k_len keys
// over `width` = H · dh columns: f32 dq, dk and dv accumulators and two statistics per padded query and head.
int64_t attention_backward_workspace(int64_t batch, int64_t q_len, int64_t k_len, int64_t heads, int64_t width);

// Slots of a decoding cache one GPU block attends to before the runs are merged, and the f32 elements of
// the workspace a cache-layout forward needs: per sequence, head and run, dh partial sums and two statistics.
constexpr int64_t kCacheSplitSlots = 512;
inline int64_t cache_attention_workspace(int64_t batch, int64_t heads, int64_t k_len, int64_t dh) {
  const int64_t runs = (k_len + kCacheSplitSlots - 1) / kCacheSplitSlots;
  return runs > 1 ? batch * heads * runs * (dh + 2) : 0;
}

// Whether the GPU's cache-layout forward takes heads of head_dim channels whose cached keys and values are of
// type `cache` (the activation type, or i8): a head is 1 to 32 lanes of 16 bytes, a power of two, and at most
// kCacheMaxHeadDim channels.
constexpr int64_t kCacheMaxHeadDim = 256;
inline bool gpu_cache_attention_takes(int64_t head_dim, DType cache) {
  const int64_t per_lane = 16 / static_cast<int64_t>(dtype_size(cache)), lanes = head_dim / per_lane;
  return head_dim <= kCacheMaxHeadDim && head_dim % per_lane == 0 && lanes >= 1 && lanes <= 32 &&
         (lanes & (lanes - 1)) == 0;
}

// The widest head the GPU's top-k block attention takes (kernels/cuda/topk_attention.h).
constexpr int64_t kTopKMaxHeadDim = 128;

// Columns of one head's summary of a key block: the per-channel minima then maxima (quest), or the
// per-channel sums (moba).
RATPLUS_HOST_DEVICE inline int64_t block_summary_width(BlockScore score, int64_t dh) {
  return score == BlockScore::quest ? 2 * dh : dh;
}

// Whether any head of the call has an active top-k block term.
inline bool has_top_k(const AttentionArgs& a) {
  for (const BlockTopK& t : a.head_blocks)
    if (t.active()) return true;
  return false;
}

// Both check every argument once (shapes, dtypes, devices, positions, layout; std::logic_error naming
// the culprit) and then run on the device of the tensors.
void attention_forward(const AttentionArgs& a);
void attention_backward(const AttentionArgs& a, const AttentionGrads& g);

}  // namespace ratplus
