// Experiment configuration (SPEC §10): reads the YAML sections into ExperimentConfig with strict checks
// (unknown keys with a "did you mean", types, ranges, rules that span several keys), applies command-line
// overrides to the YAML tree before those checks, and writes configs back as YAML that parses to the
// same values.
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace ratplus {
namespace {

constexpr std::string_view kSections[] = {"model",    "data",       "train",   "optim",
                                          "parallel", "checkpoint", "metrics", "runtime"};
constexpr std::string_view kFormats[] = {"auto", "llmc", "flat_u16", "flat_u32"};
constexpr std::string_view kOrders[] = {"ordered", "random"};
constexpr std::string_view kObjectives[] = {"joint", "dense", "adapt"};
constexpr std::string_view kResumeModes[] = {"auto", "never"};
constexpr std::string_view kDevices[] = {"auto", "cpu", "cuda"};
constexpr std::string_view kPrecisions[] = {"bf16", "fp32"};

// ---- small text helpers ----

// Shortest text that parses back to exactly `x`.
std::string format_number(double x) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, x);
  return std::string(buffer, result.ptr);
}

// The whole of `text` as a number of type T (an optional leading '+' allowed), or nothing.
template <class T>
std::optional<T> parse_number(std::string_view text) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-' && text[1] != '+') text.remove_prefix(1);
  T value{};
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  if (result.ec != std::errc() || result.ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string join(std::span<const std::string_view> words, std::string_view separator) {
  std::string text;
  for (const std::string_view word : words) {
    if (!text.empty()) text += separator;
    text += word;
  }
  return text;
}

// Edit distance counting a swap of two neighbouring characters as one edit.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1] ? 1u : 0u)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// "; did you mean 'x'?" for the closest candidate within a few edits of `word`, else "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best;
  size_t best_distance = 0;
  for (const std::string_view candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    if (best.empty() || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty() || best_distance > std::max<size_t>(1, best.size() / 3)) return "";
  return "; did you mean '" + std::string(best) + "'?";
}

// How a node looks, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (node.Scalar().empty()) return "an empty string";
  if (node.Tag() == "!") return "the quoted string \"" + node.Scalar() + "\"";
  return "'" + node.Scalar() + "'";
}

std::string override_location(const std::string& text) { return "command line (" + text + ")"; }

// ---- reading values ----

// Where the value of one key came from: a line of the source text, or the command-line override that set it.
struct Origin {
  std::string source;
  std::optional<std::string> override_text;

  std::string where(const YAML::Mark& mark) const {
    if (override_text) return override_location(*override_text);
    if (mark.is_null()) return source;
    return source + ":" + std::to_string(mark.line + 1);
  }
};

// One value of the tree with its full key ("model.d_model") and where it was written; the typed readers
// fail with an InputError naming both.
class Setting {
 public:
  Setting(std::string key, YAML::Node node, Origin origin, const YAML::Mark& mark)
      : key_(std::move(key)), node_(std::move(node)), origin_(std::move(origin)), where_(origin_.where(mark)) {}

  const std::string& key() const { return key_; }
  const YAML::Node& node() const { return node_; }
  const std::string& where() const { return where_; }

  [[noreturn]] void fail(const std::string& what) const { throw InputError(where_ + ": " + key_ + ": " + what); }

  int64_t integer_at_least(int64_t min) const {
    const int64_t value = parse<int64_t>("an integer");
    if (value < min) fail("must be >= " + std::to_string(min) + ", got " + std::to_string(value));
    return value;
  }

  uint64_t unsigned_integer() const { return parse<uint64_t>("a non-negative integer"); }

  double number() const {
    const double value = parse<double>("a number");
    if (!std::isfinite(value)) fail("must be a finite number, got " + node_.Scalar());
    return value;
  }

  double number_above(double bound) const {
    const double value = number();
    if (!(value > bound)) fail("must be > " + format_number(bound) + ", got " + format_number(value));
    return value;
  }

  double number_at_least(double bound) const {
    const double value = number();
    if (value < bound) fail("must be >= " + format_number(bound) + ", got " + format_number(value));
    return value;
  }

  // A number in [low, high] or, when `high_included` is false, in [low, high).
  double number_in(double low, double high, bool high_included) const {
    const double value = number();
    if (value < low || value > high || (!high_included && value == high)) {
      fail("must be in [" + format_number(low) + ", " + format_number(high) + (high_included ? "]" : ")") + ", got " +
           format_number(value));
    }
    return value;
  }

  bool boolean() const {
    const std::string text = plain_scalar("true or false");
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    fail("expected true or false, got '" + text + "'");
  }

  // Any scalar as text; an empty value reads as "".
  std::string text() const {
    if (node_.IsNull()) return "";
    if (!node_.IsScalar()) fail("expected a string, got " + describe(node_));
    return node_.Scalar();
  }

  std::string choice(std::span<const std::string_view> options) const {
    const std::string value = text();
    if (std::ranges::find(options, value) == options.end()) {
      fail("must be one of " + join(options, "|") + ", got '" + value + "'" + did_you_mean(value, options));
    }
    return value;
  }

  // One path or a list of them; an empty value is an empty list.
  std::vector<std::string> paths() const {
    if (node_.IsNull()) return {};
    if (node_.IsScalar()) return {path()};
    if (!node_.IsSequence()) fail("expected a path or a list of paths, got " + describe(node_));
    std::vector<std::string> result;
    for (const Setting& item : items()) result.push_back(item.path());
    return result;
  }

  // The elements of a list, each named key[i] and located at its own line.
  std::vector<Setting> items() const {
    if (!node_.IsSequence()) fail("expected a list, got " + describe(node_));
    std::vector<Setting> result;
    for (size_t i = 0; i < node_.size(); ++i) {
      result.emplace_back(key_ + "[" + std::to_string(i) + "]", node_[i], origin_, node_[i].Mark());
    }
    return result;
  }

 private:
  std::string path() const {
    if (!node_.IsScalar() || node_.Scalar().empty()) fail("expected a path, got " + describe(node_));
    return node_.Scalar();
  }

  // The text of an unquoted scalar (numbers and booleans are never quoted); anything else fails.
  std::string plain_scalar(const std::string& expected) const {
    if (!node_.IsScalar() || node_.Tag() == "!") fail("expected " + expected + ", got " + describe(node_));
    return node_.Scalar();
  }

  template <class T>
  T parse(const std::string& expected) const {
    const std::string text = plain_scalar(expected);
    const std::optional<T> value = parse_number<T>(text);
    if (!value) fail("expected " + expected + ", got '" + text + "'");
    return *value;
  }

  std::string key_;
  YAML::Node node_;
  Origin origin_;
  std::string where_;
};

// ---- the keys of each section ----

// One key of a section: its name and how its value is read into the section's struct.
template <class Section>
struct Field {
  std::string_view name;
  void (*read)(const Setting&, Section&);
};

const Field<ModelConfig> kModelFields[] = {
    {"vocab_size", [](const Setting& s, ModelConfig& m) { m.vocab_size = s.integer_at_least(1); }},
    {"d_model", [](const Setting& s, ModelConfig& m) { m.d_model = s.integer_at_least(1); }},
    {"n_layers", [](const Setting& s, ModelConfig& m) { m.n_layers = s.integer_at_least(1); }},
    {"n_heads", [](const Setting& s, ModelConfig& m) { m.n_heads = s.integer_at_least(1); }},
    {"d_ffn", [](const Setting& s, ModelConfig& m) { m.d_ffn = s.integer_at_least(1); }},
    {"norm_eps", [](const Setting& s, ModelConfig& m) { m.norm_eps = s.number_above(0); }},
    {"rope_base", [](const Setting& s, ModelConfig& m) { m.rope_base = s.number_above(0); }},
    {"tie_embeddings", [](const Setting& s, ModelConfig& m) { m.tie_embeddings = s.boolean(); }},
    {"recurrence", [](const Setting& s, ModelConfig& m) { m.recurrence = s.boolean(); }},
    {"init_std", [](const Setting& s, ModelConfig& m) { m.init_std = s.number_above(0); }},
};

const Field<DataConfig> kDataFields[] = {
    {"train", [](const Setting& s, DataConfig& d) { d.train = s.paths(); }},
    {"val", [](const Setting& s, DataConfig& d) { d.val = s.paths(); }},
    {"format", [](const Setting& s, DataConfig& d) { d.format = s.choice(kFormats); }},
    {"seq_len", [](const Setting& s, DataConfig& d) { d.seq_len = s.integer_at_least(1); }},
    {"eos_id", [](const Setting& s, DataConfig& d) { d.eos_id = s.integer_at_least(-1); }},
    {"order", [](const Setting& s, DataConfig& d) { d.order = s.choice(kOrders); }},
    {"seed", [](const Setting& s, DataConfig& d) { d.seed = s.unsigned_integer(); }},
};

const Field<TrainConfig> kTrainFields[] = {
    {"objective", [](const Setting& s, TrainConfig& t) { t.objective = s.choice(kObjectives); }},
    {"arl_dilation", [](const Setting& s, TrainConfig& t) { t.arl_dilation = s.integer_at_least(1); }},
    {"pattern", [](const Setting& s, TrainConfig& t) { t.pattern = s.text(); }},
    {"steps", [](const Setting& s, TrainConfig& t) { t.steps = s.integer_at_least(1); }},
    {"global_batch", [](const Setting& s, TrainConfig& t) { t.global_batch = s.integer_at_least(1); }},
    {"micro_batch", [](const Setting& s, TrainConfig& t) { t.micro_batch = s.integer_at_least(1); }},
    {"init_from", [](const Setting& s, TrainConfig& t) { t.init_from = s.text(); }},
    {"seed", [](const Setting& s, TrainConfig& t) { t.seed = s.unsigned_integer(); }},
    {"metrics_jsonl", [](const Setting& s, TrainConfig& t) { t.metrics_jsonl = s.text(); }},
    {"log_every", [](const Setting& s, TrainConfig& t) { t.log_every = s.integer_at_least(1); }},
    {"val_every", [](const Setting& s, TrainConfig& t) { t.val_every = s.integer_at_least(0); }},
    {"val_batches", [](const Setting& s, TrainConfig& t) { t.val_batches = s.integer_at_least(1); }},
    {"stop_after", [](const Setting& s, TrainConfig& t) { t.stop_after = s.integer_at_least(0); }},
    {"max_nonfinite", [](const Setting& s, TrainConfig& t) { t.max_nonfinite = s.integer_at_least(1); }},
};

void read_betas(const Setting& s, OptimConfig& o) {
  const std::vector<Setting> items = s.items();
  if (items.size() != 2) s.fail("expected a list of two numbers [beta1, beta2], got " + std::to_string(items.size()));
  for (size_t i = 0; i < 2; ++i) o.betas[i] = items[i].number_in(0, 1, false);
}

const Field<OptimConfig> kOptimFields[] = {
    {"lr", [](const Setting& s, OptimConfig& o) { o.lr = s.number_at_least(0); }},
    {"min_lr", [](const Setting& s, OptimConfig& o) { o.min_lr = s.number_at_least(0); }},
    {"warmup", [](const Setting& s, OptimConfig& o) { o.warmup = s.number_in(0, 1, true); }},
    {"betas", read_betas},
    {"eps", [](const Setting& s, OptimConfig& o) { o.eps = s.number_above(0); }},
    {"weight_decay", [](const Setting& s, OptimConfig& o) { o.weight_decay = s.number_at_least(0); }},
    {"grad_clip", [](const Setting& s, OptimConfig& o) { o.grad_clip = s.number_above(0); }},
};

const Field<ParallelConfig> kParallelFields[] = {
    {"tp", [](const Setting& s, ParallelConfig& p) { p.tp = s.integer_at_least(1); }},
    {"zero1", [](const Setting& s, ParallelConfig& p) { p.zero1 = s.boolean(); }},
    {"bucket_mb", [](const Setting& s, ParallelConfig& p) { p.bucket_mb = s.number_above(0); }},
};

const Field<CheckpointConfig> kCheckpointFields[] = {
    {"dir",
     [](const Setting& s, CheckpointConfig& c) {
       c.dir = s.text();
       if (c.dir.empty()) s.fail("must not be empty");
     }},
    {"every", [](const Setting& s, CheckpointConfig& c) { c.every = s.integer_at_least(0); }},
    {"keep", [](const Setting& s, CheckpointConfig& c) { c.keep = s.integer_at_least(1); }},
    {"resume", [](const Setting& s, CheckpointConfig& c) { c.resume = s.choice(kResumeModes); }},
};

// "host:port" with a non-empty host and a port in [0, 65535].
bool is_host_port(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::optional<int64_t> port = parse_number<int64_t>(text.substr(colon + 1));
  return port && *port >= 0 && *port <= 65535;
}

const Field<MetricsConfig> kMetricsFields[] = {
    {"listen",
     [](const Setting& s, MetricsConfig& m) {
       m.listen = s.text();
       if (!m.listen.empty() && !is_host_port(m.listen))
         s.fail("expected \"host:port\" or \"\" (off), got '" + m.listen + "'");
     }},
    {"linger_seconds", [](const Setting& s, MetricsConfig& m) { m.linger_seconds = s.number_at_least(0); }},
};

const Field<RuntimeConfig> kRuntimeFields[] = {
    {"device", [](const Setting& s, RuntimeConfig& r) { r.device = s.choice(kDevices); }},
    {"precision", [](const Setting& s, RuntimeConfig& r) { r.precision = s.choice(kPrecisions); }},
};

// ---- reading whole trees ----

void require_top_level_map(const YAML::Node& root, const std::string& source) {
  if (root.IsNull() || root.IsMap()) return;
  throw InputError(Origin{source, {}}.where(root.Mark()) + ": expected a mapping of sections (" +
                   join(kSections, ", ") + "), got " + describe(root));
}

// Reads the sections of a tree into config structs, remembering where each key was set so that a rule
// spanning several keys can point at one of them.
class Reader {
 public:
  // `overrides` maps a full key (or a section the command line created) to the override that set it.
  Reader(std::string source, std::map<std::string, std::string> overrides)
      : source_(std::move(source)), overrides_(std::move(overrides)) {}

  ExperimentConfig experiment(const YAML::Node& root) {
    require_top_level_map(root, source_);
    ExperimentConfig config;
    config.source = source_;
    if (root.IsMap()) {
      for_each_entry(root, "",
                     [&](const std::string& name, const Setting& section) { read_section(name, section, config); });
    }
    check_model(config.model);
    check_rest(config);
    return config;
  }

  // The model section alone, as stored in a checkpoint: every key except init_std must be given.
  ModelConfig model(const YAML::Node& root) {
    ModelConfig model;
    read_fields(Setting("model", root, origin_of("model"), root.Mark()), kModelFields, model);
    for (const Field<ModelConfig>& field : kModelFields) {
      const std::string key = "model." + std::string(field.name);
      require_input(field.name == "init_std" || set_at_.contains(key),
                    source_ + ": " + key + ": missing key (a model config must give every key but init_std)");
    }
    check_model(model);
    return model;
  }

 private:
  Origin origin_of(const std::string& key) const {
    const auto found = overrides_.find(key);
    if (found == overrides_.end()) return Origin{source_, {}};
    return Origin{source_, found->second};
  }

  // Calls visit(name, setting) for each entry of a mapping; keys must be plain names, given once.
  template <class Visit>
  void for_each_entry(const YAML::Node& map, const std::string& prefix, Visit visit) {
    std::map<std::string, std::string> first_given;
    for (const auto& entry : map) {
      const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : describe(entry.first);
      const std::string key = prefix.empty() ? name : prefix + "." + name;
      const Setting setting(key, entry.second, origin_of(key), entry.first.Mark());
      if (!entry.first.IsScalar()) setting.fail("keys must be plain names");
      const auto [first, inserted] = first_given.emplace(name, setting.where());
      if (!inserted) setting.fail("duplicate key (first given at " + first->second + ")");
      visit(name, setting);
    }
  }

  void read_section(const std::string& name, const Setting& section, ExperimentConfig& config) {
    if (name == "model") return read_fields(section, kModelFields, config.model);
    if (name == "data") return read_fields(section, kDataFields, config.data);
    if (name == "train") return read_fields(section, kTrainFields, config.train);
    if (name == "optim") return read_fields(section, kOptimFields, config.optim);
    if (name == "parallel") return read_fields(section, kParallelFields, config.parallel);
    if (name == "checkpoint") return read_fields(section, kCheckpointFields, config.checkpoint);
    if (name == "metrics") return read_fields(section, kMetricsFields, config.metrics);
    if (name == "runtime") return read_fields(section, kRuntimeFields, config.runtime);
    const std::string hint = did_you_mean(name, kSections);
    section.fail("unknown section" + (hint.empty() ? " (expected one of: " + join(kSections, ", ") + ")" : hint));
  }

  template <class Section, size_t N>
  void read_fields(const Setting& section, const Field<Section> (&fields)[N], Section& out) {
    if (section.node().IsNull()) return;
    if (!section.node().IsMap()) section.fail("expected a mapping of keys, got " + describe(section.node()));
    std::vector<std::string_view> names;
    for (const Field<Section>& field : fields) names.push_back(field.name);
    for_each_entry(section.node(), section.key(), [&](const std::string& name, const Setting& setting) {
      const auto field = std::ranges::find(fields, std::string_view(name), &Field<Section>::name);
      if (field == std::end(fields)) {
        const std::string hint = did_you_mean(name, names);
        setting.fail("unknown key" + (hint.empty() ? " (expected one of: " + join(names, ", ") + ")" : hint));
      }
      field->read(setting, out);
      set_at_[setting.key()] = setting.where();
    });
  }

  // Fails unless `ok`, naming the first of `keys` that the config sets (they all have valid defaults).
  void require(bool ok, std::initializer_list<std::string_view> keys, const std::string& what) const {
    if (ok) return;
    for (const std::string_view key : keys) {
      const auto found = set_at_.find(std::string(key));
      if (found != set_at_.end()) throw InputError(found->second + ": " + std::string(key) + ": " + what);
    }
    throw InputError(source_ + ": " + std::string(*keys.begin()) + ": " + what);
  }

  void check_model(const ModelConfig& m) const {
    require(m.d_model % m.n_heads == 0, {"model.n_heads", "model.d_model"},
            "d_model (" + std::to_string(m.d_model) + ") must be a multiple of n_heads (" + std::to_string(m.n_heads) +
                ")");
    require(m.head_dim() % 2 == 0, {"model.n_heads", "model.d_model"},
            "head_dim = d_model / n_heads = " + std::to_string(m.head_dim()) + " must be even (RoPE rotates pairs)");
  }

  void check_rest(const ExperimentConfig& c) const {
    require(c.data.eos_id < c.model.vocab_size, {"data.eos_id", "model.vocab_size"},
            "eos_id (" + std::to_string(c.data.eos_id) + ") must be < model.vocab_size (" +
                std::to_string(c.model.vocab_size) + ")");
    require(c.train.global_batch % c.train.micro_batch == 0, {"train.global_batch", "train.micro_batch"},
            "global_batch (" + std::to_string(c.train.global_batch) + ") must be a multiple of micro_batch (" +
                std::to_string(c.train.micro_batch) + ")");
    require(c.optim.min_lr <= c.optim.lr, {"optim.min_lr", "optim.lr"},
            "min_lr (" + format_number(c.optim.min_lr) + ") must be <= lr (" + format_number(c.optim.lr) + ")");
  }

  std::string source_;
  std::map<std::string, std::string> overrides_;
  std::map<std::string, std::string> set_at_;  // full key -> where it was set
};

YAML::Node load_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError(Origin{source, {}}.where(e.mark) + ": invalid YAML: " + e.msg);
  }
}

// Sets `section.key` in the tree to the YAML value after '=' and records which override set which key
// (and which section, when the override created it).
void apply_override(YAML::Node& root, const std::string& text, const std::string& source,
                    std::map<std::string, std::string>& overrides) {
  const size_t equals = text.find('=');
  const std::string path = text.substr(0, equals);
  const size_t dot = path.find('.');
  const bool well_formed = equals != std::string::npos && dot != std::string::npos && dot > 0 &&
                           dot + 1 < path.size() && path.find('.', dot + 1) == std::string::npos;
  require_input(well_formed, override_location(text) + ": expected section.key=value");
  const std::string section = path.substr(0, dot);

  YAML::Node value;
  try {
    value = YAML::Load(text.substr(equals + 1));
  } catch (const YAML::Exception& e) {
    throw InputError(override_location(text) + ": invalid YAML value: " + e.msg);
  }

  require_top_level_map(root, source);
  const YAML::Node existing = std::as_const(root)[section];
  if (!existing.IsDefined()) {
    overrides[section] = text;
  } else if (!existing.IsNull() && !existing.IsMap()) {
    throw InputError(Origin{source, {}}.where(existing.Mark()) + ": " + section + ": expected a mapping of keys, got " +
                     describe(existing));
  }
  root[section][path.substr(dot + 1)] = value;
  overrides[path] = text;
}

// ---- writing ----

void emit(YAML::Emitter& out, const char* key, int64_t value) {
  out << YAML::Key << key << YAML::Value << std::to_string(value);
}
void emit(YAML::Emitter& out, const char* key, uint64_t value) {
  out << YAML::Key << key << YAML::Value << std::to_string(value);
}
void emit(YAML::Emitter& out, const char* key, double value) {
  out << YAML::Key << key << YAML::Value << format_number(value);
}
void emit(YAML::Emitter& out, const char* key, bool value) {
  out << YAML::Key << key << YAML::Value << (value ? "true" : "false");
}

// Strings are always double-quoted so that values such as "", "null" or "true" stay strings.
void emit(YAML::Emitter& out, const char* key, const std::string& value) {
  out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
}

void emit(YAML::Emitter& out, const char* key, const std::vector<std::string>& values) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& value : values) out << YAML::DoubleQuoted << value;
  out << YAML::EndSeq;
}

void emit(YAML::Emitter& out, const char* key, const std::array<double, 2>& values) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const double value : values) out << format_number(value);
  out << YAML::EndSeq;
}

void emit_model(YAML::Emitter& out, const ModelConfig& m) {
  out << YAML::BeginMap;
  emit(out, "vocab_size", m.vocab_size);
  emit(out, "d_model", m.d_model);
  emit(out, "n_layers", m.n_layers);
  emit(out, "n_heads", m.n_heads);
  emit(out, "d_ffn", m.d_ffn);
  emit(out, "norm_eps", m.norm_eps);
  emit(out, "rope_base", m.rope_base);
  emit(out, "tie_embeddings", m.tie_embeddings);
  emit(out, "recurrence", m.recurrence);
  emit(out, "init_std", m.init_std);
  out << YAML::EndMap;
}

std::string emitted_text(const YAML::Emitter& out) {
  check_internal(out.good(), "YAML emitter failed to write a config");
  return std::string(out.c_str()) + "\n";
}

}  // namespace

ExperimentConfig load_experiment_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  require_input(in.is_open(), path + ": cannot open config file (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  require_input(!in.bad(), path + ": cannot read config file");
  return parse_experiment_config(text.str(), path, overrides);
}

ExperimentConfig parse_experiment_config(const std::string& yaml_text, const std::string& source,
                                         const std::vector<std::string>& overrides) {
  YAML::Node root = load_yaml(yaml_text, source);
  std::map<std::string, std::string> override_of;
  for (const std::string& text : overrides) apply_override(root, text, source, override_of);
  return Reader(source, std::move(override_of)).experiment(root);
}

std::string model_config_to_yaml(const ModelConfig& model) {
  YAML::Emitter out;
  emit_model(out, model);
  return emitted_text(out);
}

ModelConfig model_config_from_yaml(const std::string& yaml_text, const std::string& source) {
  return Reader(source, {}).model(load_yaml(yaml_text, source));
}

std::string experiment_config_to_yaml(const ExperimentConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "model" << YAML::Value;
  emit_model(out, config.model);

  const DataConfig& d = config.data;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  emit(out, "train", d.train);
  emit(out, "val", d.val);
  emit(out, "format", d.format);
  emit(out, "seq_len", d.seq_len);
  emit(out, "eos_id", d.eos_id);
  emit(out, "order", d.order);
  emit(out, "seed", d.seed);
  out << YAML::EndMap;

  const TrainConfig& t = config.train;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  emit(out, "objective", t.objective);
  emit(out, "arl_dilation", t.arl_dilation);
  emit(out, "pattern", t.pattern);
  emit(out, "steps", t.steps);
  emit(out, "global_batch", t.global_batch);
  emit(out, "micro_batch", t.micro_batch);
  emit(out, "init_from", t.init_from);
  emit(out, "seed", t.seed);
  emit(out, "metrics_jsonl", t.metrics_jsonl);
  emit(out, "log_every", t.log_every);
  emit(out, "val_every", t.val_every);
  emit(out, "val_batches", t.val_batches);
  emit(out, "stop_after", t.stop_after);
  emit(out, "max_nonfinite", t.max_nonfinite);
  out << YAML::EndMap;

  const OptimConfig& o = config.optim;
  out << YAML::Key << "optim" << YAML::Value << YAML::BeginMap;
  emit(out, "lr", o.lr);
  emit(out, "min_lr", o.min_lr);
  emit(out, "warmup", o.warmup);
  emit(out, "betas", o.betas);
  emit(out, "eps", o.eps);
  emit(out, "weight_decay", o.weight_decay);
  emit(out, "grad_clip", o.grad_clip);
  out << YAML::EndMap;

  out << YAML::Key << "parallel" << YAML::Value << YAML::BeginMap;
  emit(out, "tp", config.parallel.tp);
  emit(out, "zero1", config.parallel.zero1);
  emit(out, "bucket_mb", config.parallel.bucket_mb);
  out << YAML::EndMap;

  const CheckpointConfig& c = config.checkpoint;
  out << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap;
  emit(out, "dir", c.dir);
  emit(out, "every", c.every);
  emit(out, "keep", c.keep);
  emit(out, "resume", c.resume);
  out << YAML::EndMap;

  out << YAML::Key << "metrics" << YAML::Value << YAML::BeginMap;
  emit(out, "listen", config.metrics.listen);
  emit(out, "linger_seconds", config.metrics.linger_seconds);
  out << YAML::EndMap;

  out << YAML::Key << "runtime" << YAML::Value << YAML::BeginMap;
  emit(out, "device", config.runtime.device);
  emit(out, "precision", config.runtime.precision);
  out << YAML::EndMap;

  out << YAML::EndMap;
  return emitted_text(out);
}

}  // namespace ratplus
