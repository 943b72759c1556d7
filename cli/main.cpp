// `ratplus`: one binary, one subcommand per task. Exit codes (core/error.h): 0 success, 2 bad usage or input
// (the message names the file, key, offset or option), 1 internal failure; `train` also ends with 3 when it
// stopped at train.stop_after and 75 when a signal stopped it.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

namespace {

// The value of the first of `names` set in the environment, or "".
std::string first_set(std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (const char* value = std::getenv(name)) return value;
  return "";
}

// Log lines carry the date, the level and, in a run of several processes (a launcher's, before MPI starts),
// the process's rank: "[2026-12-01 04:17:29.064] [warning] [rank 1] ...".
std::string log_pattern() {
  const std::string rank = first_set({"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"});
  const std::string size = first_set({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"});
  const bool several = !rank.empty() && !size.empty() && size != "1";
  return "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] " + (several ? "[rank " + rank + "] " : std::string()) + "%v";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ratplus: train, adapt, evaluate and decode RAT+ language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ratplus 0.1.0");
  // Logs go to stderr; stdout carries results (tables, inspections) that scripts may read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("ratplus"));
  spdlog::set_pattern(log_pattern());
  namespace cli = ratplus::cli;
  const cli::Action actions[] = {cli::add_train_command(app), cli::add_eval_command(app), cli::add_init_command(app),
                                 cli::add_data_command(app), cli::add_ckpt_command(app), cli::add_bench_command(app),
                                 cli::add_generate_command(app)};
  const auto commands = app.get_subcommands({});
  const bool known = argc > 1 && std::any_of(commands.begin(), commands.end(),
                                             [&](CLI::App* c) { return c->check_name(argv[1]); });
  if (argc > 1 && argv[1][0] != '-' && !known) {
    std::fprintf(stderr, "ratplus: error: unknown command '%s' (commands: train, eval, generate, init, data, ckpt, bench; see --help)\n", argv[1]);
    return ratplus::exit_code::bad_input;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? ratplus::exit_code::success : ratplus::exit_code::bad_input;
  }
  try {
    for (size_t i = 0; i < commands.size(); ++i)
      if (commands[i]->parsed()) actions[i]();
  } catch (const ratplus::EarlyExit& e) {
    return e.code;
  } catch (const ratplus::InputError& e) {
    std::fprintf(stderr, "ratplus: error: %s\n", e.what());
    return ratplus::exit_code::bad_input;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ratplus: internal error: %s\n", e.what());
    return ratplus::exit_code::failure;
  }
  return ratplus::exit_code::success;
}
