// Experiment configuration (SPEC §10): reads the YAML sections into ExperimentConfig with strict checks
// (unknown keys with a "did you mean", types, ranges, rules that span several keys), applies command-line
// overrides to the YAML tree before those checks, writes configs back as YAML that parses to the same
// values, and compares them. Every key is read, written and compared through the schema (config_schema.h).
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/config_schema.h"
#include "core/config_setting.h"
#include "core/error.h"

namespace ratplus {
namespace {

using config_detail::config_schema;
using config_detail::describe;
using config_detail::did_you_mean;
using config_detail::Field;
using config_detail::find_section;
using config_detail::format_number;
using config_detail::join;
using config_detail::Origin;
using config_detail::override_location;
using config_detail::Section;
using config_detail::Setting;

const Section& model_section() { return *find_section("model"); }

std::vector<std::string_view> section_names() {
  std::vector<std::string_view> names;
  for (const Section& section : config_schema()) names.push_back(section.name);
  return names;
}

// ---- reading whole trees ----

void require_top_level_map(const YAML::Node& root, const std::string& source) {
  if (root.IsNull() || root.IsMap()) return;
  throw InputError(Origin{source, {}}.where(root.Mark()) + ": expected a mapping of sections (" +
                   join(section_names(), ", ") + "), got " + describe(root));
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
    ExperimentConfig config;
    read_fields(Setting("model", root, origin_of("model"), root.Mark()), model_section(), config);
    for (const Field<ExperimentConfig>& field : model_section().fields) {
      const std::string key = "model." + std::string(field.name);
      require_input(field.initialisation_only || set_at_.contains(key),
                    source_ + ": " + key + ": missing key (a model config must give every key but init_std)");
    }
    check_model(config.model);
    return config.model;
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

  void read_section(const std::string& name, const Setting& setting, ExperimentConfig& config) {
    if (const Section* section = find_section(name)) return read_fields(setting, *section, config);
    const std::vector<std::string_view> names = section_names();
    const std::string hint = did_you_mean(name, names);
    setting.fail("unknown section" + (hint.empty() ? " (expected one of: " + join(names, ", ") + ")" : hint));
  }

  void read_fields(const Setting& keys, const Section& section, ExperimentConfig& out) {
    if (keys.node().IsNull()) return;
    if (!keys.node().IsMap()) keys.fail("expected a mapping of keys, got " + describe(keys.node()));
    std::vector<std::string_view> names;
    for (const Field<ExperimentConfig>& field : section.fields) names.push_back(field.name);
    for_each_entry(keys.node(), keys.key(), [&](const std::string& name, const Setting& setting) {
      const auto field = std::ranges::find(section.fields, std::string_view(name), &Field<ExperimentConfig>::name);
      if (field == section.fields.end()) {
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
    // Counted in floating point, so that absurd sizes are refused before any integer count overflows.
    const long double d = m.d_model, per_layer = (m.recurrence ? 6 : 5) * d * d + 2 * d * m.d_ffn + 2 * d;
    const long double parameters = m.n_layers * per_layer + 2 * d * m.vocab_size + d;
    require(parameters <= 0x1p48L, {"model.d_model", "model.d_ffn", "model.vocab_size", "model.n_layers"},
            "the model would hold " + format_number(static_cast<double>(parameters)) +
                " parameters, more than 2^48 (a typo?)");
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

// ---- writing and comparing ----

// One section as a YAML mapping of its keys, in schema order.
void emit_section(YAML::Emitter& out, const Section& section, const ExperimentConfig& config) {
  out << YAML::BeginMap;
  for (const Field<ExperimentConfig>& field : section.fields) {
    out << YAML::Key << std::string(field.name) << YAML::Value;
    field.write(out, config);
  }
  out << YAML::EndMap;
}

std::string emitted_text(const YAML::Emitter& out) {
  check_internal(out.good(), "YAML emitter failed to write a config");
  return std::string(out.c_str()) + "\n";
}

// The value of one key as the YAML writer puts it.
std::string value_text(const Field<ExperimentConfig>& field, const ExperimentConfig& config) {
  YAML::Emitter out;
  field.write(out, config);
  check_internal(out.good(), "YAML emitter failed to write a config value");
  return out.c_str();
}

// The differences on the keys of `section` (all of them, or those that shape a trained model).
void add_differences(std::vector<ConfigDifference>& out, const Section& section, const ExperimentConfig& first,
                     const ExperimentConfig& second, bool shape_only) {
  for (const Field<ExperimentConfig>& field : section.fields) {
    if ((shape_only && field.initialisation_only) || field.same(first, second)) continue;
    out.push_back({std::string(section.name) + "." + std::string(field.name), value_text(field, first),
                   value_text(field, second)});
  }
}

ExperimentConfig with_model(const ModelConfig& model) {
  ExperimentConfig config;
  config.model = model;
  return config;
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
  emit_section(out, model_section(), with_model(model));
  return emitted_text(out);
}

ModelConfig model_config_from_yaml(const std::string& yaml_text, const std::string& source) {
  return Reader(source, {}).model(load_yaml(yaml_text, source));
}

std::string experiment_config_to_yaml(const ExperimentConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const Section& section : config_schema()) {
    out << YAML::Key << std::string(section.name) << YAML::Value;
    emit_section(out, section, config);
  }
  out << YAML::EndMap;
  return emitted_text(out);
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const Section& section : config_schema()) {
    for (const Field<ExperimentConfig>& field : section.fields)
      keys.push_back(std::string(section.name) + "." + std::string(field.name));
  }
  return keys;
}

std::vector<ConfigDifference> config_differences(const ExperimentConfig& first, const ExperimentConfig& second) {
  std::vector<ConfigDifference> differences;
  for (const Section& section : config_schema()) add_differences(differences, section, first, second, false);
  return differences;
}

std::vector<ConfigDifference> model_shape_differences(const ModelConfig& first, const ModelConfig& second) {
  std::vector<ConfigDifference> differences;
  add_differences(differences, model_section(), with_model(first), with_model(second), true);
  return differences;
}

}  // namespace ratplus
