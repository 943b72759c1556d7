// The subcommands of `ratplus`. Each registers its options on the CLI11 app and returns the action to
// run once parsing succeeded; actions throw InputError for bad input (exit code 2).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace ratplus::cli {

using Action = std::function<void()>;

Action add_init_command(CLI::App& app);
Action add_eval_command(CLI::App& app);
Action add_data_command(CLI::App& app);
Action add_train_command(CLI::App& app);
Action add_ckpt_command(CLI::App& app);
Action add_bench_command(CLI::App& app);
Action add_generate_command(CLI::App& app);
// `bench decode`, `bench prefill` and `bench checkpoint`, registered under the `bench` command by
// add_bench_command.
Action add_bench_decode_command(CLI::App& bench);
Action add_bench_prefill_command(CLI::App& bench);
Action add_bench_checkpoint_command(CLI::App& bench);

}  // namespace ratplus::cli
