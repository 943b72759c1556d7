// Experiment configuration (SPEC §10): the YAML sections, their strict validation and command-line
// overrides. Every error is an InputError naming the file, the line and the key. Each key is a member of
// a section struct below and one row of the schema in config_schema.cpp, which drives reading, writing and
// comparing.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config_choices.h"
#include "core/model_config.h"

namespace ratplus {

struct DataConfig {
  std::vector<std::string> train;  // paths or globs, as written
  std::vector<std::string> val;
  ShardFormat format = ShardFormat::automatic;
  int64_t seq_len = 128;
  int64_t eos_id = -1;             // -1 = none
  DataOrder order = DataOrder::ordered;
  uint64_t seed = 0;
};

struct TrainConfig {
  Objective objective = Objective::joint;
  int64_t arl_dilation = 64;        // L*
  std::string pattern = "dense";    // pattern text (SPEC §10), used by adapt
  int64_t steps = 100;
  int64_t global_batch = 8;         // sequences per batch
  int64_t micro_batch = 8;          // sequences per pass per data-parallel rank
  std::string init_from;            // checkpoint whose /model starts the run ("" = fresh init)
  uint64_t seed = 0;
  std::string metrics_jsonl;        // "" = off
  int64_t log_every = 10;           // steps between progress lines
  int64_t val_every = 0;            // steps between validation runs on data.val; 0 = off
  int64_t val_batches = 8;          // windows of data.val per validation
  int64_t stop_after = 0;           // end cleanly with a checkpoint once this many steps are done; 0 = never
  int64_t max_nonfinite = 5;        // abort after this many skipped (non-finite) updates in a row
};

struct OptimConfig {
  double lr = 8e-4;
  double min_lr = 1e-6;
  double warmup = 0.05;                       // fraction of steps
  std::array<double, 2> betas = {0.9, 0.95};
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
};

struct ParallelConfig {
  int64_t tp = 1;          // tensor-parallel ranks; data parallel = world size / tp
  bool zero1 = false;      // shard AdamW state over the data-parallel ranks
  double bucket_mb = 128;  // data-parallel gradient reduction starts in buckets of this many MiB of f32
};

struct CheckpointConfig {
  std::string dir = "checkpoints";
  int64_t every = 0;               // steps; 0 = only at the end
  int64_t keep = 3;
  ResumeMode resume = ResumeMode::automatic;
};

struct MetricsConfig {
  std::string listen;              // "host:port", "" = off
  double linger_seconds = 0;       // keep serving this long after training ends (for a last scrape)
};

struct RuntimeConfig {
  DeviceChoice device = DeviceChoice::automatic;
  Precision precision = Precision::bf16;
};

struct ExperimentConfig {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  MetricsConfig metrics;
  RuntimeConfig runtime;
  std::string source;              // the file it came from ("<string>" when parsed from text)
};

// Loads a YAML experiment file and applies `section.key=value` overrides (in order) before validating.
// Missing keys keep their defaults; unknown keys, wrong types and out-of-range values are InputErrors
// that name the file, line and key (with a "did you mean" for near misses).
ExperimentConfig load_experiment_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Same, from YAML text; `source` names it in messages.
ExperimentConfig parse_experiment_config(const std::string& yaml_text, const std::string& source,
                                         const std::vector<std::string>& overrides = {});

// The model section as YAML text (SPEC §7: the `config` attribute of /model) and back. Parsing is as
// strict as for a whole experiment file; `source` names the origin in messages (e.g. "ckpt.h5:/model").
std::string model_config_to_yaml(const ModelConfig& model);
ModelConfig model_config_from_yaml(const std::string& yaml_text, const std::string& source);

// The full resolved config as YAML (what a training checkpoint records); parsing it back gives an equal config.
std::string experiment_config_to_yaml(const ExperimentConfig& config);

// Every key of the schema as "section.key", in the order the YAML is written.
std::vector<std::string> config_keys();

// A key whose value differs between two configs, with both values as the YAML writes them.
struct ConfigDifference {
  std::string key;  // "section.key"
  std::string first;
  std::string second;
};

// The keys on which `first` and `second` differ (every key of every section; `source` is not a key).
std::vector<ConfigDifference> config_differences(const ExperimentConfig& first, const ExperimentConfig& second);

// The model keys on which two models differ once trained: every key but init_std, which only seeds the
// initial weights (and which a checkpoint's model config may leave out).
std::vector<ConfigDifference> model_shape_differences(const ModelConfig& first, const ModelConfig& second);

}  // namespace ratplus
