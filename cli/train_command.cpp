// `ratplus train --config FILE [section.key=value ...]`: the training loop of SPEC §4 and §9. SIGTERM and
// SIGINT stop it at the next step boundary with a checkpoint; a second SIGINT ends it at once.
#include <csignal>

#include "cli/commands.h"
#include "core/config.h"
#include "trainer/trainer.h"

namespace ratplus::cli {

namespace {

void on_stop_signal(int signal) {
  Trainer::request_stop();
  std::signal(signal, SIG_DFL);
}

}  // namespace

Action add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a model (objectives joint, dense, adapt) from a YAML config");
  struct Options {
    std::string config;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--config", o->config, "experiment YAML file")->required();
  cmd->add_option("overrides", o->overrides, "section.key=value overrides");
  return [o] {
    const ExperimentConfig config = load_experiment_config(o->config, o->overrides);
    Trainer trainer(config);
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGINT, on_stop_signal);
    trainer.run();
  };
}

}  // namespace ratplus::cli
