// `ratplus eval --checkpoint FILE --data FILE... --seq-len T --batches N --pattern P [--pattern P ...]
//  [--eos-id ID] [--json FILE] [--device D] [--precision fp32|bf16]`: loss and perplexity of a checkpoint under
//  each pattern (SPEC §10). On the GPU, bf16 runs the mixed-precision path that training validates with (tensor
//  cores, flash attention); fp32, the default, is exact to f32 everywhere. The CPU always computes in f32.
//  A loss that is not finite ends the command with exit code 1 (loading refuses non-finite weights, so the
//  model's computation overflowed), nothing printed or written.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "checkpoint/model_checkpoint.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/device.h"
#include "inference/evaluate.h"

namespace ratplus::cli {

namespace {

void print_table(const std::vector<EvalResult>& results) {
  size_t width = 7;
  for (const EvalResult& r : results) width = std::max(width, r.pattern.size());
  fmt::print("{:<{}}  {:>9}  {:>11}  {:>10}\n", "pattern", width, "loss", "ppl", "tokens");
  for (const EvalResult& r : results)
    fmt::print("{:<{}}  {:>9.5f}  {:>11.4f}  {:>10}\n", r.pattern, width, r.loss, std::exp(r.loss), r.tokens);
}

// Loading checked that every weight is finite, so a non-finite loss means the computation overflowed: a
// failure of the run, not a result.
void require_finite_losses(const std::string& checkpoint, const std::vector<EvalResult>& results) {
  for (const EvalResult& r : results)
    if (!std::isfinite(r.loss))
      throw std::runtime_error(fmt::format("{}: the loss under pattern {} is {}: the model's computation overflowed "
                                           "(loading found every weight finite)",
                                           checkpoint, r.pattern, r.loss));
}

}  // namespace

Action add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "loss of a checkpoint on token data under attention patterns");
  struct Options {
    std::string checkpoint, json, format = "auto", device = "auto", precision = "fp32";
    std::vector<std::string> data, patterns;
    int64_t seq_len = 0, batches = 0, eos_id = -1, micro_batch = 4;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--checkpoint", o->checkpoint, "HDF5 checkpoint (its /model group is used)")->required();
  cmd->add_option("--data", o->data, "token shards (paths or globs)")->required();
  cmd->add_option("--seq-len", o->seq_len, "tokens per window (T)")->required();
  cmd->add_option("--batches", o->batches, "number of windows to evaluate, from the first")->required();
  cmd->add_option("--pattern", o->patterns, "attention pattern, repeatable (e.g. dense, dilated:D=16,W=256,P=4)")
      ->required();
  cmd->add_option("--eos-id", o->eos_id, "end-of-document token (-1 = none)");
  cmd->add_option("--json", o->json, "also write the results as JSON to this file");
  cmd->add_option("--format", o->format, "shard format: auto, llmc, flat_u16, flat_u32");
  cmd->add_option("--micro-batch", o->micro_batch, "windows per forward pass");
  cmd->add_option("--device", o->device, "auto (the GPU when there is one), cpu or cuda")
      ->check(CLI::IsMember(choice_strings<DeviceChoice>()));
  cmd->add_option("--precision", o->precision, "fp32, or bf16 (mixed precision, on the GPU only)")
      ->check(CLI::IsMember(choice_strings<Precision>()))
      ->capture_default_str();
  return [o] {
    std::vector<Pattern> patterns;
    for (const std::string& text : o->patterns) patterns.push_back(Pattern::parse(text));
    const ModelConfig config = read_checkpoint_model_config(o->checkpoint);
    require_input(o->eos_id >= -1 && o->eos_id < config.vocab_size,
                  fmt::format("--eos-id {} is outside the vocabulary of {}", o->eos_id, config.vocab_size));
    require_input(o->micro_batch >= 1, "--micro-batch must be at least 1");
    const TokenStream data(o->data, parse_shard_format(o->format), config.vocab_size);
    const Device device = select_device(parse_choice<DeviceChoice>(o->device, "--device"));
    const Precision precision = parse_choice<Precision>(o->precision, "--precision");
    const DType dtype = device == Device::cuda && precision == Precision::bf16 ? DType::bf16 : DType::f32;
    Model::memory_plan(config, dtype, std::min(o->micro_batch, o->batches), o->seq_len, false)
        .check_fits(device, fmt::format("memory plan on {}", device_name(device)),
                    "lower --micro-batch or --seq-len, or use --precision bf16");
    Model model(config, device, dtype);
    load_model_weights(o->checkpoint, model);
    const EvalOptions options{o->seq_len, o->batches, o->eos_id, o->micro_batch};
    const std::vector<EvalResult> results = evaluate_patterns(model, data, options, patterns);
    require_finite_losses(o->checkpoint, results);
    print_table(results);
    if (!o->json.empty()) write_text_file_atomically(o->json, eval_results_json(results));
  };
}

}  // namespace ratplus::cli
