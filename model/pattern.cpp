// Pattern text grammar (SPEC §10):
//   pattern := "layers=" item ("|" item)*  |  layer
//   item    := layer ("*" N)?
//   layer   := "heads=" N ":" simple ("+" N ":" simple)*  |  simple
//   simple  := "dense" | "dilated:" args | "local" (":" args)? | "topk" (":" args)?
//   args    := KEY=VALUE ("," KEY=VALUE)*
// dilated takes D (required, ≥ 1), W, P; local takes W, P; omitted W and P are 0. topk takes B (≥ 1,
// default 64), K (≥ 0, default 8), W, P, D (≥ 0, default 0: no dilated term) and score=quest|moba (default
// quest), SPEC §6.
#include "model/pattern.h"

#include <charconv>
#include <fmt/format.h>
#include <map>

#include "core/error.h"

namespace ratplus {

namespace {

// No model has more layers or heads than this; larger counts are typos (and would exhaust memory).
constexpr int64_t kMaxCount = int64_t{1} << 16;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t pos; (pos = s.find(sep, start)) != std::string::npos; start = pos + 1) parts.push_back(s.substr(start, pos - start));
  parts.push_back(s.substr(start));
  return parts;
}

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(fmt::format("pattern '{}': {}", text_, why));
  }

  int64_t integer(const std::string& s, const char* what) const {
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
      fail(fmt::format("{} must be an integer, got '{}'", what, s));
    return value;
  }

  HeadGroup simple(const std::string& s) const {
    const size_t colon = s.find(':');
    const std::string kind = s.substr(0, colon);
    std::map<std::string, int64_t> args;
    std::string score;
    if (colon != std::string::npos) {
      for (const std::string& kv : split(s.substr(colon + 1), ',')) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos) fail(fmt::format("expected KEY=VALUE, got '{}'", kv));
        const std::string key = kv.substr(0, eq);
        if (args.count(key) || (key == "score" && !score.empty())) fail(fmt::format("'{}' given twice", key));
        if (key == "score" && kind == "topk") {
          score = kv.substr(eq + 1);
          if (score != "quest" && score != "moba") fail(fmt::format("unknown score '{}' (expected quest, moba)", score));
        } else {
          args[key] = integer(kv.substr(eq + 1), key.c_str());
        }
      }
    }
    auto take = [&](const char* key, int64_t fallback) {
      auto it = args.find(key);
      if (it == args.end()) return fallback;
      const int64_t v = it->second;
      args.erase(it);
      return v;
    };
    HeadGroup group;
    KeySet& keys = group.keys;
    if (kind == "dense") {
      keys = {1, 0, 0};
    } else if (kind == "dilated") {
      if (!args.count("D")) fail("dilated needs D, e.g. dilated:D=16");
      keys.dilation = take("D", 1);
      if (keys.dilation < 1) fail(fmt::format("D must be at least 1, got {}", keys.dilation));
      keys.window = take("W", 0);
      keys.sinks = take("P", 0);
    } else if (kind == "local") {
      keys.dilation = 0;
      keys.window = take("W", 0);
      keys.sinks = take("P", 0);
    } else if (kind == "topk") {
      group.topk = {take("B", 64), take("K", 8), score == "moba" ? BlockScore::moba : BlockScore::quest};
      if (group.topk.block < 1) fail(fmt::format("B must be at least 1, got {}", group.topk.block));
      if (group.topk.k < 0) fail(fmt::format("K must be at least 0, got {}", group.topk.k));
      keys.dilation = take("D", 0);
      if (keys.dilation < 0) fail(fmt::format("D must be at least 0, got {}", keys.dilation));
      keys.window = take("W", 0);
      keys.sinks = take("P", 0);
    } else {
      fail(fmt::format("unknown pattern kind '{}' (expected dense, dilated, local, topk)", kind));
    }
    if (!args.empty()) fail(fmt::format("'{}' takes no argument '{}'", kind, args.begin()->first));
    if (keys.window < 0 || keys.sinks < 0) fail("W and P must be at least 0");
    return group;
  }

  LayerPattern layer(const std::string& s) const {
    if (!s.starts_with("heads=")) return {{simple(s)}};
    LayerPattern layer;
    int64_t heads = 0;
    for (const std::string& group : split(s.substr(6), '+')) {
      const size_t colon = group.find(':');
      if (colon == std::string::npos) fail(fmt::format("head group '{}' must read COUNT:PATTERN", group));
      const int64_t count = integer(group.substr(0, colon), "head count");
      if (count < 1) fail("head counts must be at least 1");
      heads += count;
      if (heads > kMaxCount) fail(fmt::format("head groups cover more than {} heads", kMaxCount));
      layer.groups.push_back(simple(group.substr(colon + 1)));
      layer.groups.back().heads = count;
    }
    return layer;
  }

  std::vector<LayerPattern> pattern() const {
    if (!text_.starts_with("layers=")) return {layer(text_)};
    std::vector<LayerPattern> layers;
    for (const std::string& item : split(text_.substr(7), '|')) {
      const size_t star = item.rfind('*');
      const int64_t repeat = star == std::string::npos ? 1 : integer(item.substr(star + 1), "repeat count");
      if (repeat < 1) fail("repeat counts must be at least 1");
      if (repeat > kMaxCount - static_cast<int64_t>(layers.size()))
        fail(fmt::format("gives more than {} layers", kMaxCount));
      const LayerPattern l = layer(item.substr(0, star));
      layers.insert(layers.end(), repeat, l);
    }
    return layers;
  }

 private:
  const std::string& text_;
};

}  // namespace

Pattern Pattern::parse(const std::string& text) {
  Pattern p;
  p.text_ = text;
  p.layers_ = Parser(text).pattern();
  return p;
}

Pattern Pattern::dense() { return parse("dense"); }

Pattern Pattern::dilated(int64_t dilation, int64_t window, int64_t sinks) {
  std::string text = fmt::format("dilated:D={}", dilation);
  if (window > 0) text += fmt::format(",W={}", window);
  if (sinks > 0) text += fmt::format(",P={}", sinks);
  return parse(text);
}

void Pattern::check_fits(int64_t n_layers, int64_t n_heads) const {
  const Parser parser(text_);
  if (layers_.size() != 1 && static_cast<int64_t>(layers_.size()) != n_layers)
    parser.fail(fmt::format("gives {} layers, the model has {}", layers_.size(), n_layers));
  for (const LayerPattern& layer : layers_) {
    if (layer.groups.size() == 1 && layer.groups[0].heads == 0) continue;
    int64_t total = 0;
    for (const HeadGroup& g : layer.groups) total += g.heads;
    if (total != n_heads) parser.fail(fmt::format("head groups cover {} heads, the model has {}", total, n_heads));
  }
}

std::vector<HeadGroup> Pattern::heads(int64_t layer, int64_t n_heads) const {
  const LayerPattern& l = layers_.size() == 1 ? layers_[0] : layers_.at(layer);
  std::vector<HeadGroup> heads;
  for (const HeadGroup& g : l.groups) heads.insert(heads.end(), g.heads == 0 ? n_heads : g.heads, g);
  check_internal(static_cast<int64_t>(heads.size()) == n_heads, "Pattern::heads: pattern does not fit the model");
  return heads;
}

std::vector<KeySet> Pattern::head_keys(int64_t layer, int64_t n_heads) const {
  std::vector<KeySet> keys;
  for (const HeadGroup& g : heads(layer, n_heads)) keys.push_back(g.keys);
  return keys;
}

std::vector<BlockTopK> Pattern::head_blocks(int64_t layer, int64_t n_heads) const {
  std::vector<BlockTopK> blocks;
  for (const HeadGroup& g : heads(layer, n_heads)) blocks.push_back(g.topk);
  return blocks;
}

bool Pattern::has_top_k() const {
  for (const LayerPattern& l : layers_)
    for (const HeadGroup& g : l.groups)
      if (g.topk.active()) return true;
  return false;
}

}  // namespace ratplus
