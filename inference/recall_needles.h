// The samples of the recall evaluation (`ratplus eval --task recall`, SPEC §6 "Recall evaluation"): haystacks
// of real text cut from token data, a needle — a random key and value framed by marker tokens — placed at a
// chosen depth in each, and the key asked for again at the end, so that the model must continue with the value.
// Everything is a pure function of the data, the layout and the seed.
#pragma once

#include <cstdint>
#include <vector>

#include "data/token_shard.h"

namespace ratplus {

inline constexpr int64_t kRecallKeyTokens = 4;    // K: random ids of a needle's key
inline constexpr int64_t kRecallValueTokens = 4;  // L: random ids of its value
// A needle `needle key separator value` and the tail `query key separator value` each hold this many tokens.
inline constexpr int64_t kRecallNeedleTokens = kRecallKeyTokens + kRecallValueTokens + 2;

// The marker ids: the three highest of the vocabulary. Keys and values are drawn from the ids below them.
struct RecallMarkers {
  int32_t needle, separator, query;
};
RecallMarkers recall_markers(int64_t vocab_size);

struct RecallLayout {
  int64_t seq_len = 0;         // T: tokens the model reads per sample
  std::vector<double> depths;  // each in (0, 1): the fraction of the haystack before the needle
  int64_t needles = 0;         // samples per depth
  uint64_t seed = 0;
};

// The shortest --seq-len that leaves a haystack of one token: T + 1 = 2 · kRecallNeedleTokens + 1.
inline constexpr int64_t kRecallMinSeqLen = 2 * kRecallNeedleTokens;

// H: the haystack tokens of a sample, T + 1 − 2 · kRecallNeedleTokens.
inline int64_t recall_haystack_tokens(int64_t seq_len) { return seq_len + 1 - 2 * kRecallNeedleTokens; }

// The position of the needle's first token: round(depth · H), so that a fraction `depth` of the haystack
// comes before it.
int64_t recall_needle_start(double depth, int64_t seq_len);

struct RecallSample {
  int64_t trial = 0;         // 0 … needles − 1: the haystack and needle it shares with the other depths
  size_t depth = 0;          // index into RecallLayout::depths
  int64_t needle_start = 0;  // recall_needle_start(depth, T)
  std::vector<int32_t> tokens;  // T + 1 tokens: the model reads the first T; the last L are the value
};

// InputError naming the option or --data when the layout cannot be built: T below kRecallMinSeqLen, a
// depth outside (0, 1) or given twice, no depths, needles < 1, a vocabulary without room for markers and
// keys, or data with fewer than `needles` whole haystacks.
void check_recall_layout(const RecallLayout& layout, const TokenStream& data);

// The samples, depth by depth (sample i has depth i / needles and trial i % needles). Trial j's haystack is
// chunk c_j, tokens [c_j·H, c_j·H + H) of the concatenated data, where c_0, c_1, … are drawn without
// replacement from the floor(size / H) chunks; its key and value are K + L ids drawn uniformly from
// [0, V − 3). Both are the same at every depth, so depths differ only in where the needle lies.
std::vector<RecallSample> recall_samples(const TokenStream& data, const RecallLayout& layout);

}  // namespace ratplus
