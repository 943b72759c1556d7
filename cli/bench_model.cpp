// The benchmarks' model source (see bench_model.h).
#include "cli/bench_model.h"

#include "checkpoint/model_checkpoint.h"
#include "core/config.h"
#include "core/error.h"

namespace ratplus::cli {

void BenchModelSource::add_options(CLI::App& cmd) {
  auto* from_config = cmd.add_option("--config", config, "experiment YAML file (random weights)");
  auto* from_checkpoint = cmd.add_option("--checkpoint", checkpoint, "HDF5 checkpoint (its /model weights)");
  from_config->excludes(from_checkpoint);
}

ModelConfig BenchModelSource::model_config() {
  require_input(config.empty() != checkpoint.empty(), "give --config or --checkpoint");
  if (!checkpoint.empty()) return read_checkpoint_model_config(checkpoint);
  const ExperimentConfig experiment = load_experiment_config(config);
  seed_ = experiment.train.seed;
  return experiment.model;
}

void BenchModelSource::load_weights(Model& model) const {
  if (checkpoint.empty())
    model.init_parameters(seed_);
  else
    load_model_weights(checkpoint, model);
}

void isolate_benchmark_run(ExperimentConfig& c, const std::string& shard, const std::string& checkpoint_dir) {
  c.data.train = {shard};
  c.data.val = {shard};
  c.data.format = ShardFormat::llmc;
  c.checkpoint.dir = checkpoint_dir;
  c.checkpoint.resume = ResumeMode::never;
  c.train.metrics_jsonl = "";
  c.train.val_every = 0;
  c.metrics.listen = "";
}

}  // namespace ratplus::cli
