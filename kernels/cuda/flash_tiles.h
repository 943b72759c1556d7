// Tile planning of the tensor-core attention (flash_forward.cu, flash_backward.cu): which key tiles a block
// visits for a head's KeySet, and which (query, key) pairs of a tile count. Plain C++ for the host and the
// device, so that the unit tests check the plans on the CPU against key_ranges (kernels/attention.h).
//
// Query t of a head with key set (D, W, P) sees two disjoint sets of keys:
//   band pairs     j ≤ t and (j < P or j ≥ t − W)        the sinks and the near band, contiguous keys
//   compact pairs  j = c·D + D − 1 with P ≤ j < t − W    the dilated keys not already in the band
// A band tile holds consecutive keys j; a compact tile consecutive compact indices c, that is keys
// c·D + D − 1 (key_row), so the dilated keys form dense tiles without a gathered copy. The plans take a
// key set normalised for the sequence length (normalised): dense (D = 1) becomes (D 0, W T, P 0), the
// band then being the whole causal triangle.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/attention.h"

namespace ratplus::cuda {

constexpr int64_t kMaxSeq = int64_t(1) << 22;  // keeps positions, tile counts and grid sizes in range of int
constexpr int kThreads = 256;                  // 8 warps, 16 rows (queries or keys) each
constexpr int kFwdQueries = 128, kFwdKeys = 64;
constexpr int kBwdKeys = 128, kBwdQueries = 64;

// The key set as the plans use it for sequences of `seq` ≤ kMaxSeq keys: dense becomes (0, seq, 0), a
// dilation beyond seq none (0), W and P at most seq, so every field fits an int.
inline KeySet normalised(const KeySet& s, int64_t seq) {
  if (s.dilation == 1) return {0, seq, 0};
  return {s.dilation > seq ? 0 : s.dilation, std::min(s.window, seq), std::min(s.sinks, seq)};
}

// The fields of a normalised key set as ints (the kernels' position type).
RATPLUS_HOST_DEVICE inline int dilation_of(const KeySet& s) { return static_cast<int>(s.dilation); }
RATPLUS_HOST_DEVICE inline int window_of(const KeySet& s) { return static_cast<int>(s.window); }
RATPLUS_HOST_DEVICE inline int sinks_of(const KeySet& s) { return static_cast<int>(s.sinks); }

// Row of compact key c.
RATPLUS_HOST_DEVICE inline int compact_row(const KeySet& s, int c) { return c * dilation_of(s) + dilation_of(s) - 1; }
// The first compact key not among the sinks.
RATPLUS_HOST_DEVICE inline int first_compact(const KeySet& s) {
  return (sinks_of(s) + dilation_of(s)) / dilation_of(s) - 1;
}
// One past the last compact key a query ≤ t_max sees.
RATPLUS_HOST_DEVICE inline int compact_end(const KeySet& s, int t_max) {
  return t_max > window_of(s) ? (t_max - window_of(s)) / dilation_of(s) : 0;
}

// The row of key `key` of a tile: a band position, or a compact index.
RATPLUS_HOST_DEVICE inline int key_row(const KeySet& s, bool compact, int key) {
  return compact ? compact_row(s, key) : key;
}

RATPLUS_HOST_DEVICE inline bool band_pair(const KeySet& s, int t, int j) {
  return j <= t && (j < sinks_of(s) || j >= t - window_of(s));
}

RATPLUS_HOST_DEVICE inline bool compact_pair(const KeySet& s, int t, int c) {
  const int j = compact_row(s, c);
  return j >= sinks_of(s) && j < t - window_of(s);
}

// Whether query t counts key `key` of a band or compact tile.
RATPLUS_HOST_DEVICE inline bool tile_pair(const KeySet& s, bool compact, int t, int key) {
  return compact ? compact_pair(s, t, key) : band_pair(s, t, key);
}

// How keys k0 … k1 (band positions or compact indices) meet the key sets of queries t0 … t1: none of the
// pairs count, some do (the kernels then mask each pair by tile_pair), or all do.
enum class Cover { none, some, all };

RATPLUS_HOST_DEVICE inline Cover cover(const KeySet& s, bool compact, int k0, int k1, int t0, int t1) {
  const int w = window_of(s), p = sinks_of(s);
  if (compact) {
    const int j0 = compact_row(s, k0), j1 = compact_row(s, k1);
    if (j1 < p || j0 >= t1 - w) return Cover::none;
    return j0 >= p && j1 < t0 - w ? Cover::all : Cover::some;
  }
  if (k0 > t1 || (k0 >= p && k1 < t0 - w)) return Cover::none;
  return k1 <= t0 && (k1 < p || k0 >= t1 - w) ? Cover::all : Cover::some;
}

// The key tiles of a forward block (queries q0 … q1 − 1) in visiting order: the compact tiles holding
// keys below t_max − W, the tiles of the sinks [0, min(P, q1)), then the band tiles over
// [max(0, q0 − W), q1) not already visited. Each tile has kFwdKeys keys.
struct ForwardPlan {
  int compact_begin = 0, n_compact = 0, n_sink, band_begin, n_tiles;

  RATPLUS_HOST_DEVICE ForwardPlan(const KeySet& s, int q0, int q1) {
    if (dilation_of(s) > 0) {
      const int first = first_compact(s), end = compact_end(s, q1 - 1);
      compact_begin = first / kFwdKeys * kFwdKeys;
      if (end > first) n_compact = (end - compact_begin + kFwdKeys - 1) / kFwdKeys;
    }
    n_sink = (std::min(sinks_of(s), q1) + kFwdKeys - 1) / kFwdKeys;
    band_begin = std::max(n_sink, std::max(0, q0 - window_of(s)) / kFwdKeys);
    n_tiles = n_compact + n_sink + std::max(0, (q1 + kFwdKeys - 1) / kFwdKeys - band_begin);
  }
  RATPLUS_HOST_DEVICE bool compact(int i) const { return i < n_compact; }
  // The first key of tile i: a compact index or a band position.
  RATPLUS_HOST_DEVICE int start(int i) const {
    if (i < n_compact) return compact_begin + i * kFwdKeys;
    i -= n_compact;
    return (i < n_sink ? i : band_begin + i - n_sink) * kFwdKeys;
  }
};

// The compact keys of a backward pass over sequences of `seq`: per sequence, rows (indices 0 … rows − 1
// of the compact gradient buffers) and tiles of kBwdKeys (the most of any head, for the grid).
struct CompactExtent {
  int rows = 0, tiles = 0;

  void add(const KeySet& s, int seq) {
    if (dilation_of(s) == 0) return;
    const int first = first_compact(s), end = compact_end(s, seq - 1);
    if (end <= first) return;
    rows = std::max(rows, end);
    tiles = std::max(tiles, (end - first / kBwdKeys * kBwdKeys + kBwdKeys - 1) / kBwdKeys);
  }
};

// What backward block `tile` of a head does: its keys k0 … k0 + kBwdKeys − 1 (compact indices for the
// first compact_tiles blocks, band positions after them), the kBwdQueries-query steps that see any of
// them, and the end of the keys whose gradient it writes. n_steps is 0 for a block with nothing to do.
struct BackwardPlan {
  bool compact;
  int k0 = 0, key_end = 0, step_begin = 0, n_steps = 0;

  RATPLUS_HOST_DEVICE BackwardPlan(const KeySet& s, int seq, int tile, int compact_tiles)
      : compact(tile < compact_tiles) {
    int t_begin, t_end;
    if (compact) {
      if (dilation_of(s) == 0) return;
      const int first = first_compact(s);
      key_end = compact_end(s, seq - 1);
      k0 = (first / kBwdKeys + tile) * kBwdKeys;
      if (k0 >= key_end) return;
      t_begin = compact_row(s, std::max(k0, first)) + window_of(s) + 1;  // ≤ seq − 1 as k0 < key_end
      t_end = seq;
    } else {
      k0 = (tile - compact_tiles) * kBwdKeys;
      key_end = seq;
      t_begin = k0;
      t_end = k0 < sinks_of(s) ? seq : std::min(seq, k0 + kBwdKeys + window_of(s));
    }
    step_begin = t_begin / kBwdQueries;
    n_steps = (t_end + kBwdQueries - 1) / kBwdQueries - step_begin;
  }
};

}  // namespace ratplus::cuda
