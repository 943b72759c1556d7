// The part of a decoding step between the input projection and attention (SPEC §2 steps 4–5, §3), for one
// new token per sequence: the recurrence update from each sequence's state (RAT+), RoPE of the query and of
// the key at the sequence's position, and the append of that key and its value to every head group's compact
// cache, with its position. On the GPU it is one kernel (kernels/cuda/cache_append.cu); the CPU reference is
// the composition of the recurrence and RoPE ops it replaces, so both give the full forward's keys.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/recurrence.h"

namespace ratplus {

// Where a head group's compact cache keeps the key at position j (the regions of inference/key_cache.h):
// the first `sinks` slots hold positions 0 … sinks − 1, the next `dilated` slots the positions m·D − 1 from
// m = first_multiple on, and a ring of `ring` slots every other position (j mod ring).
struct CacheSlots {
  int64_t dilation = 0, sinks = 0, dilated = 0, ring = 0, first_multiple = 0;

  RATPLUS_HOST_DEVICE int64_t slot(int64_t j) const {
    if (j < sinks) return j;
    if (dilation > 0 && (j + 1) % dilation == 0) return sinks + (j + 1) / dilation - first_multiple;
    return sinks + dilated + j % ring;
  }
  RATPLUS_HOST_DEVICE int64_t capacity() const { return sinks + dilated + ring; }
};

// One head group's cache: heads first_head … first_head + heads − 1 of every sequence, rows
// b · capacity + slot of k and v ([batch · capacity, heads · dh], the model's activation type) and of
// positions (i32 [1, batch · capacity] on the same device, −1 = empty).
// A top-k block group (SPEC §6) keeps every position (dilation 1) and, beside the keys, each block's summary
// (rows b · blocks + position / topk.block, heads · block_summary_width columns, the statistics type), into
// which every appended key is folded as it was stored.
// An 8-bit cache keeps k and v as i8 and, for each row and head, the scale s of that head's part of the row
// (k_scale, v_scale: [heads, batch · capacity] of the statistics type, column b · capacity + slot): the
// key or value it stands for is s · the integers (quantize_to_int8 below).
struct CacheView {
  Tensor k, v, positions;
  int64_t first_head = 0, heads = 0;
  CacheSlots slots;
  BlockTopK topk = {};
  Tensor summaries = {};
  Tensor k_scale = {}, v_scale = {};

  bool int8() const { return k.dtype == DType::i8; }
  int64_t batch() const { return positions.cols / slots.capacity(); }
  // A top-k cache's rows of summaries per sequence.
  int64_t summary_blocks() const { return summaries.rows / batch(); }
};

// One new token per sequence. q, k, v (and g for RAT+): column slices [batch, n_heads · dh] of the input
// projection's output; state: the recurrent state [batch, n_heads · dh] (statistics type), advanced in place
// (empty for attention-only models); positions: i32 [1, batch], each new token's position, on the device.
// q_out receives the rotated queries; every cache receives the rotated key and the value (k̃ and ṽ for RAT+)
// in the slot of its position.
struct CacheAppendArgs {
  Tensor q, k, v, g;
  RecurrenceState state;
  Tensor positions;
  Tensor q_out;
  std::span<const CacheView> caches;
  int64_t n_heads = 1;
  double rope_base = 10000;
};

void cache_append(const CacheAppendArgs& a);

// Every head_dim-wide part x of every row r of `x` (a head's key or value at one position) on its 8-bit grid:
// s = max|x| / 127 (in the statistics type) into scales(head, r) and q = clamp(round(x / s), −127, 127),
// rounding half to even (all zero where max|x| = 0), into the same place of `q` (i8, x's shape). x: the
// activation type; scales: f32, or f64 for f64 activations.
void quantize_to_int8(Tensor q, Tensor scales, const Tensor& x, int64_t head_dim);

// A prompt's keys into a top-k group's summaries: keys [n, c.heads · dh] (the group's columns) at positions
// 0 … n − 1 of sequence b, folded block by block as appending them one at a time would.
void summarize_prompt_blocks(const CacheView& c, int64_t b, const Tensor& keys, int64_t n);

}  // namespace ratplus
