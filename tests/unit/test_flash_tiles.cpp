// The tile plans of the tensor-core attention (kernels/cuda/flash_tiles.h), replayed on the CPU the way
// the kernels walk them: per block its tiles, per warp of 16 rows the cover of each tile, per pair the
// mask. For every query, the keys counted — in a tile the warp does not skip, wholly covered or passing
// tile_pair — must be exactly the keys key_ranges lists (kernels/attention.h), each once: no key missing,
// none outside the set, none twice; and the backward must write each counted key's gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cuda/flash_tiles.h"

namespace ratplus::cuda {
namespace {

constexpr int kWarpRows = 16, kWarps = kThreads / 32;

using KeysPerQuery = std::vector<std::vector<int64_t>>;

KeysPerQuery expected_keys(const KeySet& s, int seq) {
  KeysPerQuery keys(seq);
  for (int t = 0; t < seq; ++t) for_each_key(s, t, [&](int64_t j) { keys[t].push_back(j); });
  return keys;
}

// The key rows each query meets in the forward's tiles.
KeysPerQuery forward_keys(const KeySet& s, int seq) {
  KeysPerQuery keys(seq);
  for (int q0 = 0; q0 < seq; q0 += kFwdQueries) {
    const ForwardPlan plan(s, q0, std::min(q0 + kFwdQueries, seq));
    for (int i = 0; i < plan.n_tiles; ++i) {
      const bool compact = plan.compact(i);
      const int start = plan.start(i);
      for (int t0 = q0; t0 < q0 + kFwdQueries; t0 += kWarpRows) {
        const Cover cov = cover(s, compact, start, start + kFwdKeys - 1, t0, t0 + kWarpRows - 1);
        if (cov == Cover::none) continue;
        for (int t = t0; t < std::min(t0 + kWarpRows, seq); ++t)
          for (int key = start; key < start + kFwdKeys; ++key)
            if (cov == Cover::all || tile_pair(s, compact, t, key)) keys[t].push_back(key_row(s, compact, key));
      }
    }
  }
  return keys;
}

// The key rows each query meets in the backward's blocks, on a grid of compact_tiles compact blocks per
// head (the most of any head); checks that each counted key's gradient is written (below the block's
// key_end, and for a compact key inside the range the epilogue adds to dk and dv).
KeysPerQuery backward_keys(const KeySet& s, int seq, int compact_tiles) {
  KeysPerQuery keys(seq);
  const int blocks = compact_tiles + (seq + kBwdKeys - 1) / kBwdKeys;
  for (int tile = 0; tile < blocks; ++tile) {
    const BackwardPlan plan(s, seq, tile, compact_tiles);
    for (int step = 0; step < plan.n_steps; ++step) {
      const int qs = (plan.step_begin + step) * kBwdQueries;
      for (int w = 0; w < kWarps; ++w) {
        const int kw = plan.k0 + w * kWarpRows;
        const Cover cov = cover(s, plan.compact, kw, kw + kWarpRows - 1, qs, qs + kBwdQueries - 1);
        if (cov == Cover::none) continue;
        for (int key = kw; key < kw + kWarpRows; ++key)
          for (int t = qs; t < std::min(qs + kBwdQueries, seq); ++t) {
            if (cov != Cover::all && !tile_pair(s, plan.compact, t, key)) continue;
            keys[t].push_back(key_row(s, plan.compact, key));
            EXPECT_LT(key, plan.key_end) << "a counted key's gradient is not written";
            if (plan.compact) {
              EXPECT_GE(key, first_compact(s)) << "the epilogue skips compact key " << key;
              EXPECT_LT(key, compact_end(s, seq - 1)) << "the epilogue skips compact key " << key;
            }
          }
      }
    }
  }
  return keys;
}

void expect_same_keys(KeysPerQuery got, const KeysPerQuery& want, const std::string& what) {
  for (size_t t = 0; t < want.size(); ++t) {
    std::sort(got[t].begin(), got[t].end());
    ASSERT_EQ(got[t], want[t]) << what << ", query " << t;
  }
}

std::string describe(const KeySet& s, int seq) {
  return "D=" + std::to_string(s.dilation) + " W=" + std::to_string(s.window) + " P=" + std::to_string(s.sinks) +
         " T=" + std::to_string(seq);
}

std::vector<KeySet> key_sets() {
  std::vector<KeySet> sets = {{1, 0, 0}, {1, 5, 3}, {0, 0, 0}, {0, 1, 0}, {0, 9, 3}, {0, 128, 4}, {0, 500, 0}};
  for (int64_t d : {2, 3, 4, 7, 16, 64, 300})
    for (int64_t w : {0, 1, 5, 17, 64, 100, 1000})
      for (int64_t p : {0, 1, 4, 70, 200}) sets.push_back({d, w, p});
  return sets;
}

const int kSeqs[] = {1, 17, 64, 129, 300, 521, 1100};

TEST(FlashTiles, ForwardTilesCoverExactlyTheKeySets) {
  for (const KeySet& raw : key_sets())
    for (int seq : kSeqs) {
      const KeySet s = normalised(raw, seq);
      expect_same_keys(forward_keys(s, seq), expected_keys(raw, seq), "forward " + describe(raw, seq));
    }
}

TEST(FlashTiles, BackwardBlocksCoverExactlyTheKeySets) {
  for (const KeySet& raw : key_sets())
    for (int seq : kSeqs) {
      const KeySet s = normalised(raw, seq);
      CompactExtent extent;
      extent.add(s, seq);
      // The grid's compact blocks: this head's, and more where another head has more compact keys.
      for (int compact_tiles : {extent.tiles, extent.tiles + 3})
        expect_same_keys(backward_keys(s, seq, compact_tiles), expected_keys(raw, seq),
                         "backward " + describe(raw, seq) + " compact tiles " + std::to_string(compact_tiles));
    }
}

TEST(FlashTiles, NormalisedKeySetsFitTheSequence) {
  EXPECT_EQ(normalised({1, 0, 0}, 100), (KeySet{0, 100, 0}));
  EXPECT_EQ(normalised({1, 7, 3}, 100), (KeySet{0, 100, 0}));
  EXPECT_EQ(normalised({200, 300, 400}, 100), (KeySet{0, 100, 100}));
  EXPECT_EQ(normalised({16, 256, 4}, 4096), (KeySet{16, 256, 4}));
}

TEST(FlashTiles, CompactExtentIsTheMostOfAnyHead) {
  const int seq = 1000;
  CompactExtent extent;
  extent.add(normalised({1, 0, 0}, seq), seq);  // dense: no compact keys
  EXPECT_EQ(extent.rows, 0);
  EXPECT_EQ(extent.tiles, 0);
  extent.add(normalised({4, 0, 0}, seq), seq);  // c = 0 … 248: rows 3 … 995 < t − W for some t ≤ 999
  EXPECT_EQ(extent.rows, 249);
  EXPECT_EQ(extent.tiles, 2);
  extent.add(normalised({16, 256, 4}, seq), seq);  // fewer
  EXPECT_EQ(extent.rows, 249);
  EXPECT_EQ(extent.tiles, 2);
}

}  // namespace
}  // namespace ratplus::cuda
