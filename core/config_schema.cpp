// The one table of config keys (SPEC §10): for each section, a row per key with its member, its reader
// and the checks on its value. Rules that span several keys live with the reader (config.cpp).
#include "core/config_schema.h"

#include <initializer_list>
#include <optional>
#include <type_traits>

namespace ratplus::config_detail {
namespace {

// A row: the key `name` reads into `member` with `read`; writing and comparing follow from the member's type.
template <class Config, class T>
Field<Config> field(std::string_view name, T Config::*member,
                    std::type_identity_t<std::function<T(const Setting&)>> read, bool initialisation_only = false) {
  return {name, initialisation_only, [member, read](const Setting& s, Config& c) { c.*member = read(s); },
          [member](YAML::Emitter& out, const Config& c) { emit_value(out, c.*member); },
          [member](const Config& a, const Config& b) { return a.*member == b.*member; }};
}

constexpr bool kInitialisationOnly = true;

// The rows of one section struct, lifted to act on the section `part` of a whole experiment config.
template <class Part>
Section section(std::string_view name, Part ExperimentConfig::*part,
                std::initializer_list<std::type_identity_t<Field<Part>>> rows) {
  Section lifted{name, {}};
  for (const Field<Part>& row : rows) {
    lifted.fields.push_back(
        {row.name, row.initialisation_only,
         [part, read = row.read](const Setting& s, ExperimentConfig& c) { read(s, c.*part); },
         [part, write = row.write](YAML::Emitter& out, const ExperimentConfig& c) { write(out, c.*part); },
         [part, same = row.same](const ExperimentConfig& a, const ExperimentConfig& b) { return same(a.*part, b.*part); }});
  }
  return lifted;
}

// ---- readers with their checks ----

auto integer_at_least(int64_t min) {
  return [min](const Setting& s) { return s.integer_at_least(min); };
}
auto integer_in(int64_t min, int64_t max) {
  return [min, max](const Setting& s) {
    const int64_t value = s.integer_at_least(min);
    if (value > max) s.fail("must be <= " + std::to_string(max) + ", got " + std::to_string(value));
    return value;
  };
}
auto number_above(double bound) {
  return [bound](const Setting& s) { return s.number_above(bound); };
}
// In (0, max]: scales and epsilons, where a huge value is a typo that would make every update non-finite.
auto positive_at_most(double max) {
  return [max](const Setting& s) {
    const double value = s.number();
    if (!(value > 0 && value <= max))
      s.fail("must be in (0, " + format_number(max) + "], got " + format_number(value));
    return value;
  };
}
auto number_at_least(double bound) {
  return [bound](const Setting& s) { return s.number_at_least(bound); };
}
template <Choice C>
C choice(const Setting& s) {
  return s.choice<C>();
}

std::array<double, 2> read_betas(const Setting& s) {
  const std::vector<Setting> items = s.items();
  if (items.size() != 2) s.fail("expected a list of two numbers [beta1, beta2], got " + std::to_string(items.size()));
  return {items[0].number_in(0, 1, false), items[1].number_in(0, 1, false)};
}

std::string non_empty_text(const Setting& s) {
  std::string text = s.text();
  if (text.empty()) s.fail("must not be empty");
  return text;
}

// "host:port" with a non-empty host and a port in [0, 65535].
bool is_host_port(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::optional<int64_t> port = parse_number<int64_t>(text.substr(colon + 1));
  return port && *port >= 0 && *port <= 65535;
}

std::string host_port_or_off(const Setting& s) {
  std::string text = s.text();
  if (!text.empty() && !is_host_port(text)) s.fail("expected \"host:port\" or \"\" (off), got '" + text + "'");
  return text;
}

std::vector<Section> make_schema() {
  return {
      section("model", &ExperimentConfig::model,
              {field("vocab_size", &ModelConfig::vocab_size, integer_at_least(1)),
               field("d_model", &ModelConfig::d_model, integer_at_least(1)),
               field("n_layers", &ModelConfig::n_layers, integer_in(1, int64_t{1} << 16)),
               field("n_heads", &ModelConfig::n_heads, integer_at_least(1)),
               field("d_ffn", &ModelConfig::d_ffn, integer_at_least(1)),
               field("norm_eps", &ModelConfig::norm_eps, positive_at_most(1)),
               field("rope_base", &ModelConfig::rope_base, number_above(0)),
               field("tie_embeddings", &ModelConfig::tie_embeddings, &Setting::boolean),
               field("recurrence", &ModelConfig::recurrence, &Setting::boolean),
               field("init_std", &ModelConfig::init_std, positive_at_most(1), kInitialisationOnly)}),
      section("data", &ExperimentConfig::data,
              {field("train", &DataConfig::train, &Setting::paths),
               field("val", &DataConfig::val, &Setting::paths),
               field("format", &DataConfig::format, choice<ShardFormat>),
               field("seq_len", &DataConfig::seq_len, integer_at_least(1)),
               field("eos_id", &DataConfig::eos_id, integer_at_least(-1)),
               field("order", &DataConfig::order, choice<DataOrder>),
               field("seed", &DataConfig::seed, &Setting::unsigned_integer)}),
      section("train", &ExperimentConfig::train,
              {field("objective", &TrainConfig::objective, choice<Objective>),
               field("arl_dilation", &TrainConfig::arl_dilation, integer_at_least(1)),
               field("pattern", &TrainConfig::pattern, &Setting::text),
               field("steps", &TrainConfig::steps, integer_at_least(1)),
               field("global_batch", &TrainConfig::global_batch, integer_at_least(1)),
               field("micro_batch", &TrainConfig::micro_batch, integer_at_least(1)),
               field("init_from", &TrainConfig::init_from, &Setting::text),
               field("seed", &TrainConfig::seed, &Setting::unsigned_integer),
               field("metrics_jsonl", &TrainConfig::metrics_jsonl, &Setting::text),
               field("log_every", &TrainConfig::log_every, integer_at_least(1)),
               field("val_every", &TrainConfig::val_every, integer_at_least(0)),
               field("val_batches", &TrainConfig::val_batches, integer_at_least(1)),
               field("stop_after", &TrainConfig::stop_after, integer_at_least(0)),
               field("max_nonfinite", &TrainConfig::max_nonfinite, integer_at_least(1))}),
      section("optim", &ExperimentConfig::optim,
              {field("lr", &OptimConfig::lr, number_at_least(0)),
               field("min_lr", &OptimConfig::min_lr, number_at_least(0)),
               field("warmup", &OptimConfig::warmup, [](const Setting& s) { return s.number_in(0, 1, true); }),
               field("betas", &OptimConfig::betas, read_betas),
               field("eps", &OptimConfig::eps, number_above(0)),
               field("weight_decay", &OptimConfig::weight_decay, number_at_least(0)),
               field("grad_clip", &OptimConfig::grad_clip, number_above(0))}),
      section("parallel", &ExperimentConfig::parallel,
              {field("tp", &ParallelConfig::tp, integer_at_least(1)),
               field("zero1", &ParallelConfig::zero1, &Setting::boolean),
               field("bucket_mb", &ParallelConfig::bucket_mb, number_above(0))}),
      section("checkpoint", &ExperimentConfig::checkpoint,
              {field("dir", &CheckpointConfig::dir, non_empty_text),
               field("every", &CheckpointConfig::every, integer_at_least(0)),
               field("keep", &CheckpointConfig::keep, integer_at_least(1)),
               field("resume", &CheckpointConfig::resume, choice<ResumeMode>)}),
      section("metrics", &ExperimentConfig::metrics,
              {field("listen", &MetricsConfig::listen, host_port_or_off),
               field("linger_seconds", &MetricsConfig::linger_seconds, number_at_least(0))}),
      section("runtime", &ExperimentConfig::runtime,
              {field("device", &RuntimeConfig::device, choice<DeviceChoice>),
               field("precision", &RuntimeConfig::precision, choice<Precision>)}),
  };
}

}  // namespace

void emit_value(YAML::Emitter& out, int64_t value) { out << std::to_string(value); }
void emit_value(YAML::Emitter& out, uint64_t value) { out << std::to_string(value); }
void emit_value(YAML::Emitter& out, double value) { out << format_number(value); }
void emit_value(YAML::Emitter& out, bool value) { out << (value ? "true" : "false"); }
void emit_value(YAML::Emitter& out, const std::string& value) { out << YAML::DoubleQuoted << value; }

void emit_value(YAML::Emitter& out, const std::vector<std::string>& values) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& value : values) out << YAML::DoubleQuoted << value;
  out << YAML::EndSeq;
}

void emit_value(YAML::Emitter& out, const std::array<double, 2>& values) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const double value : values) out << format_number(value);
  out << YAML::EndSeq;
}

std::span<const Section> config_schema() {
  static const std::vector<Section> schema = make_schema();
  return schema;
}

const Section* find_section(std::string_view name) {
  for (const Section& section : config_schema()) {
    if (section.name == name) return &section;
  }
  return nullptr;
}

}  // namespace ratplus::config_detail
