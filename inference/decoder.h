// Decoding (SPEC §3, §10): a batch of sequences, each prefilled from its prompt by one forward pass of the
// model, then extended one token at a time for the whole batch. Per layer the decoder keeps the recurrent
// state (k̃, ṽ of each sequence's last position) and, per head group of the layer's pattern, a compact cache
// of post-RoPE keys and values with their absolute positions (inference/key_cache.h), so memory per sequence
// grows as P + W + 1 + T/D, not T. A top-k block group (SPEC §6) keeps every key, like dense, and beside
// them each block's summary (per-channel minima and maxima, or sums; the statistics type), folded as keys
// arrive, from which a step scores the blocks, selects and attends. A step runs the same operations as the
// full forward on one row per sequence — norm, projections, one recurrence update from the state, RoPE at
// the sequence's position, the append to the cache, attention over the cached keys of the query's key set,
// gate, output projection, FFN — so prefill(n) and k steps give the full forward's logits at those positions.
// It runs on the model's device (CPU or GPU, through the same ops); nothing of training is allocated. A model
// split by tensor parallelism decodes on every rank of its group at once: each rank keeps the caches and state
// of its own heads, the blocks sum their outputs over the group as in training, and the logits of the
// vocabulary slices are gathered, so every rank sees the whole logits. Between the input projection and attention one op (kernels/cache_append.h)
// advances the recurrence, rotates and appends, and attention reads the caches where they lie
// (KeyLayout::cache); every index a step needs lives on the device, so on the GPU the step after its
// input copy is one CUDA graph (kernels/captured_work.h), captured on the second step. An 8-bit cache
// (CachePrecision::int8) holds every cached row and head as 8-bit integers and a scale (kernels/cache_append.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/buffer.h"
#include "core/config_choices.h"
#include "inference/key_cache.h"
#include "kernels/cache_append.h"
#include "kernels/captured_work.h"
#include "model/blocks.h"
#include "model/model.h"
#include "model/pattern.h"

namespace ratplus {

// Bytes of keys, values and positions one sequence's caches hold at up to max_len positions under `pattern`,
// and of its recurrent state — what a Decoder allocates per sequence, known before allocating.
size_t cache_bytes_per_sequence(const Model& model, const Pattern& pattern, int64_t max_len,
                                CachePrecision cache = CachePrecision::model);

// Bytes of one sequence's caches a step reads at `length` cached positions: what the caches hold, except that
// a top-k group reads the summaries of its complete blocks and only the keys and values it attends to (about
// (min(K, blocks) + 1)·B + W + P + length/D of them), not every key it holds, and on the GPU writes and reads
// an i32 selection of every slot per head.
size_t cache_bytes_read_per_step(const Model& model, const Pattern& pattern, int64_t length,
                                 CachePrecision cache = CachePrecision::model);

class Decoder {
 public:
  // Caches and state for `batch` sequences of up to `max_len` positions under `pattern` (InputError when
  // the pattern does not fit the model). Under tensor parallelism every call is collective over the group.
  Decoder(Model& model, const Pattern& pattern, int64_t batch, int64_t max_len,
          CachePrecision cache = CachePrecision::model);

  int64_t batch() const { return batch_; }
  int64_t max_len() const { return max_len_; }
  // Positions held by sequence b (its prompt and generated tokens so far).
  int64_t length(int64_t b) const { return lengths_[b]; }
  // Bytes of keys, values and positions one sequence's caches hold, and of its recurrent state.
  size_t cache_bytes_per_sequence() const;
  // Bytes the decoder holds on the model's device: caches, state, one step's activations (all ∝ batch).
  size_t memory_bytes() const { return memory_.planned_bytes(); }

  // Runs sequence b's prompt (1 ≤ size ≤ max_len tokens, < vocab_size) through one forward pass, replacing
  // whatever the sequence held, and writes the logits of its last token into `logits` [1, vocab_size].
  // Logits are in the model's gradient_dtype() (f32; f64 for an f64 model) on its device.
  void prefill(int64_t b, std::span<const int32_t> prompt, Tensor logits);
  // Appends tokens[b] (host ids) to every sequence b (each prefilled and shorter than max_len) and writes the
  // logits at the new positions into `logits` [batch, vocab_size].
  void step(std::span<const int32_t> tokens, Tensor logits);

  // For benchmarks: every sequence holds n positions (1 ≤ n < max_len) — the slots a prompt of n tokens
  // fills, with keys and values drawn from `seed` instead of computed, and a zero recurrent state.
  void prefill_synthetic(int64_t n, uint64_t seed);

 private:
  struct HeadGroup {
    std::vector<KeySet> keys;        // one per head (all equal)
    std::vector<BlockTopK> blocks;  // one per head (all equal; inactive unless top-k)
    CacheLayout layout;
    CacheView cache;           // k, v [batch · capacity, heads · dh]; positions i32 [1, batch · capacity]
  };
  // Positions 0 … n − 1 of sequence b (keys and values [n, attention width]) into g's cache, in block copies.
  void store_prompt(HeadGroup& g, int64_t b, const Tensor& keys, const Tensor& values, int64_t n);
  // The slot positions in g of sequences first … first + count − 1 after a prompt of n positions each.
  void set_positions(HeadGroup& g, int64_t first, int64_t count, int64_t n);
  // One step of every sequence from the tokens and positions in step_tokens_ and step_positions_.
  void run_step(Tensor logits);
  Dims step_dims() const;
  // Every tensor-parallel rank's vocabulary slice of some rows of logits, gathered into `logits` [rows, vocab].
  void gather_vocabulary(const Tensor& slice, Tensor logits);
  void temporal_mixing_step(int64_t layer, const Tensor& x, Tensor y);

  Model& model_;
  Pattern pattern_;
  int64_t batch_, max_len_;
  CachePrecision precision_;
  std::vector<int64_t> lengths_;
  Arena memory_;
  std::vector<std::vector<HeadGroup>> groups_;  // per layer
  std::vector<std::vector<CacheView>> caches_;  // per layer, the groups' caches
  std::vector<RecurrenceState> state_;          // per layer (RAT+), [batch, d] each
  // One step's inputs (i32 [1, batch]: each sequence's token and its position) and activations, one row per
  // sequence; the attention workspace of the longest cache.
  Tensor step_tokens_, step_positions_;
  Tensor x_, y_, h_, rstd_, z_, q_rot_, att_, lse_, gated_, workspace_;
  Tensor selection_;  // on the GPU, the slots a top-k group's heads attend to at a step (i32, the largest group)
  Tensor vocab_slice_, gathered_;  // under tensor parallelism: this rank's logits, and every rank's
  ChannelMixingState ffn_;
  CapturedWork graph_;
};

}  // namespace ratplus
