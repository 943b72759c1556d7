// Attention patterns as values (SPEC §3, §10): parsed from text such as `dilated:D=16,W=256,P=4`,
// `layers=dense*2|local:W=64`, `heads=8:dense+8:dilated:D=16`, and resolved to one key set per head of
// each layer. Kernels only ever see the resolved KeySets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace ratplus {

// A group of consecutive heads sharing one key set.
struct HeadGroup {
  int64_t heads = 0;  // 0 = every head of the layer (a pattern without `heads=`)
  KeySet keys;
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
  // One KeySet per head of layer `layer`. Call check_fits first.
  std::vector<KeySet> head_keys(int64_t layer, int64_t n_heads) const;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<LayerPattern> layers_;  // one entry = the same pattern for every layer
};

}  // namespace ratplus
