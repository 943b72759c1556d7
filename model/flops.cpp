// FLOP accounting (see flops.h). Key counts come from the same key ranges the attention kernels walk.
#include "model/flops.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace ratplus {

namespace {

double mean_keys(const KeySet& keys, const BlockTopK& topk, int64_t seq_len) {
  double total = 0;
  KeyRange ranges[3];
  for (int64_t t = 0; t < seq_len; ++t) {
    const int n = key_ranges(keys, t, ranges);
    int64_t count = 0;
    for (int i = 0; i < n; ++i) count += (ranges[i].end - ranges[i].begin + ranges[i].step - 1) / ranges[i].step;
    if (topk.active()) {  // the own block's keys outside the fixed set, and K whole earlier blocks
      const int64_t own = t / topk.block;
      for (int64_t j = own * topk.block; j < t; ++j) count += !in_key_set(keys, t, j);
      count = std::min(t + 1, count + std::min(topk.k, own) * topk.block);
    }
    total += static_cast<double>(count);
  }
  return total / static_cast<double>(seq_len);
}

}  // namespace

double mean_keys_per_query(const ModelConfig& config, const Pattern& pattern, int64_t seq_len) {
  pattern.check_fits(config.n_layers, config.n_heads);
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, double> cache;
  double total = 0;
  for (int64_t layer = 0; layer < config.n_layers; ++layer) {
    const std::vector<KeySet> keys = pattern.head_keys(layer, config.n_heads);
    const std::vector<BlockTopK> blocks = pattern.head_blocks(layer, config.n_heads);
    for (size_t h = 0; h < keys.size(); ++h) {
      const KeySet& k = keys[h];
      const auto key = std::make_tuple(k.dilation, k.window, k.sinks, blocks[h].block, blocks[h].k);
      auto it = cache.find(key);
      if (it == cache.end()) it = cache.emplace(key, mean_keys(k, blocks[h], seq_len)).first;
      total += it->second;
    }
  }
  return total / static_cast<double>(config.n_layers * config.n_heads);
}

double forward_flops_per_token(const ModelConfig& c, const Pattern& pattern, int64_t seq_len) {
  const double d = static_cast<double>(c.d_model), f = static_cast<double>(c.d_ffn);
  const double n_mat = static_cast<double>(c.n_layers) * (static_cast<double>(c.in_proj_rows()) * d + d * d + 2 * d * f) +
                       static_cast<double>(c.vocab_size) * d;
  return 2 * n_mat + 4 * static_cast<double>(c.n_layers) * d * mean_keys_per_query(c, pattern, seq_len);
}

}  // namespace ratplus
