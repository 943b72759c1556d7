// Attention patterns as values (SPEC §3, §6, §10): parsed from text such as `dilated:D=16,W=256,P=4`,
// `layers=dense*2|local:W=64`, `heads=8:dense+8:topk:B=64,K=8`, and resolved to one key set (and top-k
// block term) per head of each layer. Kernels only ever see the resolved KeySets and BlockTopKs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace ratplus {

// A group of consecutive heads sharing one key set (and, for top-k block heads, one top-k term).
struct HeadGroup {
  int64_t heads = 0;  // 0 = every head of the layer (a pattern without `heads=`)
  KeySet keys;        // top-k: the fixed part, local(W, P) and the dilated positions when D ≥ 1
  BlockTopK topk;     // inactive (B = 0) unless the pattern is `topk:...`
};

struct LayerPattern {
  std::vector<HeadGroup> groups;
};

class Pattern {
 public:
  // Throws InputError naming the text and what is wrong with it.
  static Pattern parse(const std::string& text);
  static Pattern dense();
  static Pattern dilated(int64_t dilation, int64_t window = 0, int64_t sinks = 0);

  // Checks that the pattern fits a model (layer count, head counts); InputError otherwise.
  void check_fits(int64_t n_layers, int64_t n_heads) const;
  // One KeySet (BlockTopK) per head of layer `layer`. Call check_fits first.
  std::vector<KeySet> head_keys(int64_t layer, int64_t n_heads) const;
  std::vector<BlockTopK> head_blocks(int64_t layer, int64_t n_heads) const;

  // Whether any head of any layer selects top-k blocks: an inference pattern (eval and decoding only).
  bool has_top_k() const;

  const std::string& text() const { return text_; }

 private:
  std::vector<HeadGroup> heads(int64_t layer, int64_t n_heads) const;

  std::string text_;
  std::vector<LayerPattern> layers_;  // one entry = the same pattern for every layer
};

}  // namespace ratplus
