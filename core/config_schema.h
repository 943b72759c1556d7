// The config schema: every section and every key of an experiment config, each key one row (in
// config_schema.cpp) that says how its value is read and checked, written as YAML and compared. The
// reader, the writer and the comparisons of core/config.cpp all walk this table, so adding a key means
// adding a member to its section struct and one row. Not part of the config API.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/config_setting.h"

namespace ratplus::config_detail {

// One value as YAML: numbers and booleans plain; strings and choice words double-quoted, so that values
// such as "", "null" or "true" stay strings; lists in flow style.
void emit_value(YAML::Emitter& out, int64_t value);
void emit_value(YAML::Emitter& out, uint64_t value);
void emit_value(YAML::Emitter& out, double value);
void emit_value(YAML::Emitter& out, bool value);
void emit_value(YAML::Emitter& out, const std::string& value);
void emit_value(YAML::Emitter& out, const std::vector<std::string>& values);
void emit_value(YAML::Emitter& out, const std::array<double, 2>& values);
template <Choice C>
void emit_value(YAML::Emitter& out, C value) {
  emit_value(out, std::string(choice_name(value)));
}

// One key of the struct `Config`: how its value is read (with its checks), written and compared.
template <class Config>
struct Field {
  std::string_view name;
  // Only model.init_std: it seeds the first weights, so a checkpoint's model config may leave it out and
  // two trained models are the same whatever it was.
  bool initialisation_only = false;
  std::function<void(const Setting&, Config&)> read;
  std::function<void(YAML::Emitter&, const Config&)> write;  // the value alone
  std::function<bool(const Config&, const Config&)> same;
};

// A section of the experiment config with its keys, which read, write and compare the whole config.
struct Section {
  std::string_view name;
  std::vector<Field<ExperimentConfig>> fields;
};

// The sections in the order they are written.
std::span<const Section> config_schema();

// The section called `name`, or null.
const Section* find_section(std::string_view name);

}  // namespace ratplus::config_detail
