// The needle layout of the recall evaluation (see recall_needles.h).
#include "inference/recall_needles.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <unordered_map>

#include "core/error.h"
#include "core/rng.h"

namespace ratplus {

namespace {

// Draw `index` of the seed's stream, uniform in [0, n) (up to a bias below n / 2^64).
int64_t draw(uint64_t seed, uint64_t index, int64_t n) {
  return int64_t(splitmix64(splitmix64(seed) ^ index) % uint64_t(n));
}

// The first `count` entries of a seeded permutation of [0, n): a Fisher–Yates shuffle stopped after `count`
// swaps, its swapped entries kept in a map (n may be far larger than count).
std::vector<int64_t> chunks_without_replacement(uint64_t seed, int64_t count, int64_t n) {
  std::unordered_map<int64_t, int64_t> swapped;
  const auto at = [&](int64_t i) {
    const auto it = swapped.find(i);
    return it == swapped.end() ? i : it->second;
  };
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t r = i + draw(seed, uint64_t(i), n - i);
    const int64_t picked = at(r);
    swapped[r] = at(i);
    chosen.push_back(picked);
  }
  return chosen;
}

}  // namespace

RecallMarkers recall_markers(int64_t vocab_size) {
  return {int32_t(vocab_size - 1), int32_t(vocab_size - 2), int32_t(vocab_size - 3)};
}

int64_t recall_needle_start(double depth, int64_t seq_len) {
  return std::llround(depth * double(recall_haystack_tokens(seq_len)));
}

void check_recall_layout(const RecallLayout& layout, const TokenStream& data) {
  require_input(layout.seq_len >= kRecallMinSeqLen,
                fmt::format("--seq-len {} is too short for recall: a needle and the query with its value take {} "
                            "tokens, so it must be at least {}",
                            layout.seq_len, 2 * kRecallNeedleTokens, kRecallMinSeqLen));
  require_input(!layout.depths.empty(), "--depths lists no depth");
  for (size_t i = 0; i < layout.depths.size(); ++i) {
    const double d = layout.depths[i];
    require_input(d > 0 && d < 1, fmt::format("--depths: {} is not inside (0, 1)", d));
    require_input(std::find(layout.depths.begin(), layout.depths.begin() + int64_t(i), d) ==
                      layout.depths.begin() + int64_t(i),
                  fmt::format("--depths lists {} twice", d));
  }
  require_input(layout.needles >= 1, fmt::format("--needles must be at least 1, got {}", layout.needles));
  require_input(data.vocab_size() >= 5,
                fmt::format("recall needs a vocabulary of at least 5 ids (3 markers and 2 for keys and values), "
                            "the model has {}",
                            data.vocab_size()));
  const int64_t haystack = recall_haystack_tokens(layout.seq_len);
  const int64_t chunks = data.size() / haystack;
  require_input(chunks >= layout.needles,
                fmt::format("--data holds {} tokens in {} file(s), {} haystacks of {} tokens (--seq-len {}), "
                            "fewer than the {} of --needles",
                            data.size(), data.shards().size(), chunks, haystack, layout.seq_len, layout.needles));
}

std::vector<RecallSample> recall_samples(const TokenStream& data, const RecallLayout& layout) {
  check_recall_layout(layout, data);
  const int64_t haystack = recall_haystack_tokens(layout.seq_len);
  const RecallMarkers m = recall_markers(data.vocab_size());
  const std::vector<int64_t> chunks =
      chunks_without_replacement(layout.seed, layout.needles, data.size() / haystack);

  std::vector<RecallSample> samples;
  std::vector<int32_t> hay(static_cast<size_t>(haystack));
  for (size_t d = 0; d < layout.depths.size(); ++d)
    for (int64_t j = 0; j < layout.needles; ++j) {
      data.read(chunks[size_t(j)] * haystack, haystack, hay.data());
      std::vector<int32_t> key, value;
      const uint64_t first = uint64_t(layout.needles + j * (kRecallKeyTokens + kRecallValueTokens));
      for (int64_t t = 0; t < kRecallKeyTokens + kRecallValueTokens; ++t)
        (t < kRecallKeyTokens ? key : value).push_back(int32_t(draw(layout.seed, first + uint64_t(t), m.query)));

      RecallSample s{j, d, recall_needle_start(layout.depths[d], layout.seq_len), {}};
      std::vector<int32_t>& out = s.tokens;
      const auto append_needle = [&](int32_t marker) {
        out.push_back(marker);
        out.insert(out.end(), key.begin(), key.end());
        out.push_back(m.separator);
        out.insert(out.end(), value.begin(), value.end());
      };
      out.insert(out.end(), hay.begin(), hay.begin() + s.needle_start);
      append_needle(m.needle);
      out.insert(out.end(), hay.begin() + s.needle_start, hay.end());
      append_needle(m.query);
      samples.push_back(std::move(s));
    }
  return samples;
}

}  // namespace ratplus
