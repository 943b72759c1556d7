// `ratplus init --config FILE --out FILE [section.key=value ...]`: a freshly initialised inference
// checkpoint (SPEC §2 initialisation, seeded by train.seed).
#include <spdlog/spdlog.h>

#include "checkpoint/model_checkpoint.h"
#include "cli/commands.h"
#include "core/config.h"
#include "model/parameters.h"

namespace ratplus::cli {

Action add_init_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "write a freshly initialised model checkpoint");
  struct Options {
    std::string config, out;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--config", o->config, "experiment YAML file")->required();
  cmd->add_option("--out", o->out, "checkpoint to write (.h5)")->required();
  cmd->add_option("overrides", o->overrides, "section.key=value overrides");
  return [o] {
    const ExperimentConfig config = load_experiment_config(o->config, o->overrides);
    const ParameterTable table(config.model);
    save_model_checkpoint(o->out, config.model, initial_parameters(config.model, table, config.train.seed).data());
    spdlog::info("wrote {} ({} parameters, seed {})", o->out, table.total_elements(), config.train.seed);
  };
}

}  // namespace ratplus::cli
