// `ratplus`: one binary, one subcommand per task. Exit codes (core/error.h): 0 success, 2 bad usage or input
// (the message names the file, key, offset or option), 1 internal failure; `train` also ends with 3 when it
// stopped at train.stop_after and 75 when a signal stopped it.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"ratplus: train, adapt, evaluate and serve RAT+ language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ratplus 0.1.0");
  // Logs go to stderr; stdout carries results (tables, inspections) that scripts may read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("ratplus"));
  spdlog::set_pattern("[%H:%M:%S] %^%v%$");
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
