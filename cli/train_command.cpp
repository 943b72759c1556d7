// `ratplus train --config FILE [section.key=value ...]`: the training loop of SPEC §4 and §9. SIGTERM, SIGINT
// and SIGUSR1 stop it at the next step boundary with a checkpoint (exit code 75); a second SIGINT ends it at
// once, while further SIGTERMs (a scheduler may send several) change nothing. SIGUSR1 is the one mpirun passes
// on to every rank and nothing more (launch/mpirun.sh stops a job so): on a SIGTERM of its own, mpirun sends
// the ranks SIGTERM and, odls_base_sigkill_timeout seconds later (1 by default), SIGKILL, which leaves too
// little time to write a checkpoint. A stop at train.stop_after exits with 3.
#include <csignal>

#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "trainer/trainer.h"

namespace ratplus::cli {

namespace {

void on_stop_signal(int signal) {
  Trainer::request_stop();
  if (signal == SIGINT) std::signal(SIGINT, SIG_DFL);
}

int exit_code_of(Trainer::Outcome outcome) {
  switch (outcome) {
    case Trainer::Outcome::finished: return exit_code::success;
    case Trainer::Outcome::planned_stop: return exit_code::planned_stop;
    case Trainer::Outcome::preempted: return exit_code::preempted;
  }
  return exit_code::failure;
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
    std::signal(SIGUSR1, on_stop_signal);
    const int code = exit_code_of(trainer.run());
    if (code != exit_code::success) throw EarlyExit{code};
  };
}

}  // namespace ratplus::cli
