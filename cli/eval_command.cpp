// `ratplus eval --checkpoint FILE --data FILE... --seq-len T --pattern P [--pattern P ...]
//  [--task loss|choice|recall] [--json FILE] [--device D] [--precision fp32|bf16] [--micro-batch M]` (SPEC §10),
//  under each pattern:
//  - task loss (the default; `--batches N [--eos-id ID] [--format F] [--decode [--cache model|int8]]`): loss and
//    perplexity over the first N windows of token data, from forward passes or (--decode) by decoding them
//    teacher-forced, with the cache in the model's precision or 8-bit;
//  - task choice (`[--tokenizer FILE]`): accuracy on multiple-choice questions (inference/choice_task.h);
//  - task recall (`[--needles N] [--depths D,...] [--seed S] [--format F]`): exact match and value
//    log-probability of needles placed at depths of real-text haystacks (inference/recall_task.h).
//  On the GPU, bf16 runs the mixed-precision path that training validates with (tensor cores, flash attention);
//  fp32, the default, is exact to f32 everywhere. The CPU always computes in f32. A loss or log-likelihood
//  that is not finite ends the command with exit code 1 (loading refuses non-finite weights, so the model's
//  computation overflowed), nothing printed or written.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <memory>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "checkpoint/model_checkpoint.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/device.h"
#include "inference/choice_task.h"
#include "inference/evaluate.h"
#include "inference/recall_task.h"
#include "inference/tokenizer.h"

namespace ratplus::cli {

namespace {

struct Options {
  std::string task = "loss", checkpoint, json, format = "auto", device = "auto", precision = "fp32", tokenizer,
      cache = "model";
  std::vector<std::string> data, patterns;
  int64_t seq_len = 0, batches = 0, eos_id = -1, micro_batch = 4, needles = 16;
  bool decode = false;
  std::vector<double> depths = {0.1, 0.3, 0.5, 0.7, 0.9};
  uint64_t seed = 0;
  // Options of some tasks only, to refuse them under the others.
  CLI::Option *batches_option = nullptr, *eos_option = nullptr, *format_option = nullptr,
              *tokenizer_option = nullptr, *needles_option = nullptr, *depths_option = nullptr,
              *seed_option = nullptr, *decode_option = nullptr, *cache_option = nullptr;
};

// InputError naming the first of `options` given on the command line: they do not apply to `task`.
void refuse_options(std::initializer_list<const CLI::Option*> options, const std::string& task) {
  for (const CLI::Option* option : options)
    require_input(option->count() == 0, fmt::format("{} does not apply to --task {}", option->get_name(), task));
}

// Loading checked that every weight is finite, so a non-finite result means the computation overflowed: a
// failure of the run, not a result.
void require_finite(const std::string& checkpoint, const std::string& pattern, const char* what, double value) {
  if (!std::isfinite(value))
    throw std::runtime_error(fmt::format("{}: the {} under pattern {} is {}: the model's computation overflowed "
                                         "(loading found every weight finite)",
                                         checkpoint, what, pattern, value));
}

size_t pattern_width(const std::vector<std::string>& patterns) {
  size_t width = 7;
  for (const std::string& p : patterns) width = std::max(width, p.size());
  return width;
}

// The model of the checkpoint on the chosen device, after its memory plan for `batch` sequences of
// --seq-len tokens and the task's own `buffers` was found to fit.
std::unique_ptr<Model> load_model(const Options& o, const ModelConfig& config, int64_t batch,
                                  const MemoryPlan& buffers = {}) {
  const Device device = select_device(parse_choice<DeviceChoice>(o.device, "--device"));
  const Precision precision = parse_choice<Precision>(o.precision, "--precision");
  const DType dtype = device == Device::cuda && precision == Precision::bf16 ? DType::bf16 : DType::f32;
  MemoryPlan plan = Model::memory_plan(config, dtype, batch, o.seq_len, false);
  plan.append(buffers);
  plan.check_fits(device, fmt::format("memory plan on {}", device_name(device)),
                  "lower --micro-batch or --seq-len, or use --precision bf16");
  auto model = std::make_unique<Model>(config, device, dtype);
  load_model_weights(o.checkpoint, *model);
  return model;
}

void run_loss_task(const Options& o, const ModelConfig& config, const std::vector<Pattern>& patterns) {
  refuse_options({o.tokenizer_option, o.needles_option, o.depths_option, o.seed_option}, "loss");
  require_input(o.batches_option->count() > 0, "--task loss needs --batches");
  require_input(o.eos_id >= -1 && o.eos_id < config.vocab_size,
                fmt::format("--eos-id {} is outside the vocabulary of {}", o.eos_id, config.vocab_size));
  const TokenStream data(o.data, parse_shard_format(o.format), config.vocab_size);
  const std::unique_ptr<Model> model = load_model(o, config, std::min(o.micro_batch, o.batches));
  require_input(o.cache_option->count() == 0 || o.decode, "--cache applies with --decode");
  const EvalOptions options{o.seq_len, o.batches, o.eos_id, o.micro_batch, o.decode,
                            parse_choice<CachePrecision>(o.cache, "--cache")};
  const std::vector<EvalResult> results = evaluate_patterns(*model, data, options, patterns);
  for (const EvalResult& r : results) require_finite(o.checkpoint, r.pattern, "loss", r.loss);

  const size_t width = pattern_width(o.patterns);
  fmt::print("{:<{}}  {:>9}  {:>11}  {:>10}\n", "pattern", width, "loss", "ppl", "tokens");
  for (const EvalResult& r : results)
    fmt::print("{:<{}}  {:>9.5f}  {:>11.4f}  {:>10}\n", r.pattern, width, r.loss, std::exp(r.loss), r.tokens);
  if (!o.json.empty()) write_text_file_atomically(o.json, eval_results_json(results));
}

void run_choice_task(const Options& o, const ModelConfig& config, const std::vector<Pattern>& patterns) {
  refuse_options({o.batches_option, o.eos_option, o.format_option, o.needles_option, o.depths_option,
                  o.seed_option, o.decode_option, o.cache_option},
                 "choice");
  require_input(o.data.size() == 1, fmt::format("--task choice reads one --data file, got {}", o.data.size()));
  std::unique_ptr<Tokenizer> tokenizer;
  if (!o.tokenizer.empty()) {
    tokenizer = std::make_unique<Tokenizer>(o.tokenizer);
    require_input(tokenizer->vocab_size() <= config.vocab_size,
                  fmt::format("--tokenizer: its {} pieces do not fit the model's vocabulary of {}",
                              tokenizer->vocab_size(), config.vocab_size));
  }
  const std::vector<ChoiceQuestion> questions = read_choice_questions(o.data[0], tokenizer.get(), config.vocab_size);
  check_choice_window(questions, o.seq_len);
  for (const Pattern& p : patterns) p.check_fits(config.n_layers, config.n_heads);
  const ChoiceBatching batching{o.seq_len, o.micro_batch, logit_rows_for(config.vocab_size)};
  const int64_t logit_rows = most_logit_rows(questions, batching);
  const MemoryPlan logits{{{fmt::format("logits of the scored positions ({} rows)", logit_rows),
                            size_t(logit_rows * config.vocab_size) * sizeof(float)}}};
  const std::unique_ptr<Model> model = load_model(o, config, o.micro_batch, logits);

  std::vector<ChoiceResult> results;
  for (const Pattern& p : patterns) {
    const std::vector<std::vector<double>> ll = ending_log_likelihoods(*model, p, questions, batching);
    for (const std::vector<double>& scores : ll)
      for (const double s : scores) require_finite(o.checkpoint, p.text(), "log-likelihood", s);
    results.push_back(choice_result(p.text(), questions, ll));
  }

  const size_t width = pattern_width(o.patterns);
  fmt::print("{:<{}}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}\n", "pattern", width, "acc", "stderr", "acc_norm", "stderr",
             "n");
  for (const ChoiceResult& r : results)
    fmt::print("{:<{}}  {:>8.4f}  {:>8.4f}  {:>8.4f}  {:>8.4f}  {:>8}\n", r.pattern, width, r.acc, r.acc_stderr,
               r.acc_norm, r.acc_norm_stderr, r.n);
  if (!o.json.empty()) write_text_file_atomically(o.json, choice_results_json(results));
}

void run_recall_task(const Options& o, const ModelConfig& config, const std::vector<Pattern>& patterns) {
  refuse_options({o.batches_option, o.eos_option, o.tokenizer_option, o.decode_option, o.cache_option}, "recall");
  const TokenStream data(o.data, parse_shard_format(o.format), config.vocab_size);
  const RecallLayout layout{o.seq_len, o.depths, o.needles, o.seed};
  const std::vector<RecallSample> samples = recall_samples(data, layout);
  for (const Pattern& p : patterns) p.check_fits(config.n_layers, config.n_heads);
  const int64_t batch = std::min<int64_t>(o.micro_batch, int64_t(samples.size()));
  const MemoryPlan logits{{{fmt::format("logits of the value positions ({} rows)", batch * kRecallValueTokens),
                            size_t(batch * kRecallValueTokens * config.vocab_size) * sizeof(float)}}};
  const std::unique_ptr<Model> model = load_model(o, config, batch, logits);

  std::vector<RecallResult> results;
  for (const Pattern& p : patterns) {
    const std::vector<RecallScore> scores = score_recall(*model, p, samples, o.micro_batch);
    for (const RecallScore& s : scores) require_finite(o.checkpoint, p.text(), "value log-probability", s.logprob);
    for (const RecallResult& r : recall_results(p.text(), layout, samples, scores)) results.push_back(r);
  }

  const size_t width = pattern_width(o.patterns);
  fmt::print("{:<{}}  {:>6}  {:>6}  {:>11}  {:>13}\n", "pattern", width, "depth", "n", "exact_match",
             "value_logprob");
  for (const RecallResult& r : results)
    fmt::print("{:<{}}  {:>6.3f}  {:>6}  {:>11.4f}  {:>13.5f}\n", r.pattern, width, r.depth, r.n, r.exact_match,
               r.value_logprob);
  if (!o.json.empty())
    write_text_file_atomically(o.json, recall_results_json(layout, recall_markers(config.vocab_size), results));
}

}  // namespace

Action add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval",
      "loss on token data, accuracy on multiple-choice questions, or recall of needles in long text, of a checkpoint "
      "under attention patterns");
  auto o = std::make_shared<Options>();
  cmd->add_option("--task", o->task, "loss (token data), choice (multiple-choice questions in JSONL) or recall (needles in token data)")
      ->check(CLI::IsMember({"loss", "choice", "recall"}))
      ->capture_default_str();
  cmd->add_option("--checkpoint", o->checkpoint, "HDF5 checkpoint (its /model group is used)")->required();
  cmd->add_option("--data", o->data, "loss, recall: token shards (paths or globs); choice: one JSONL file of questions")
      ->required();
  cmd->add_option("--seq-len", o->seq_len,
                  "loss, recall: tokens per window (T); choice: the longest sequence read (longer contexts lose their start)")
      ->required();
  o->batches_option =
      cmd->add_option("--batches", o->batches, "loss: number of windows to evaluate, from the first (required)");
  cmd->add_option("--pattern", o->patterns, "attention pattern, repeatable (e.g. dense, dilated:D=16,W=256,P=4, topk:B=64,K=8)")
      ->required();
  o->eos_option = cmd->add_option("--eos-id", o->eos_id, "loss: end-of-document token (-1 = none)");
  o->decode_option = cmd->add_flag("--decode", o->decode,
                                   "loss: decode each window teacher-forced (its first token prefilled, then one step "
                                   "per token through the compact caches, as generate runs) instead of a forward pass");
  o->cache_option =
      cmd->add_option("--cache", o->cache, "loss with --decode: model (the cache in the model's precision) or int8 "
                                           "(8-bit)")
          ->check(CLI::IsMember(choice_strings<CachePrecision>()))
          ->capture_default_str();
  o->tokenizer_option = cmd->add_option("--tokenizer", o->tokenizer,
                                        "choice: SentencePiece model for text questions (e.g. LLaMA-2's tokenizer.model)");
  cmd->add_option("--json", o->json, "also write the results as JSON to this file");
  o->format_option = cmd->add_option("--format", o->format, "loss, recall: shard format: auto, llmc, flat_u16, flat_u32");
  o->needles_option =
      cmd->add_option("--needles", o->needles, "recall: samples per depth, each a haystack with one needle")
          ->capture_default_str();
  o->depths_option = cmd->add_option("--depths", o->depths,
                                     "recall: comma-separated fractions in (0, 1) of the haystack before the needle")
                         ->delimiter(',')
                         ->capture_default_str();
  o->seed_option =
      cmd->add_option("--seed", o->seed, "recall: seed of the haystacks, keys and values")->capture_default_str();
  cmd->add_option("--micro-batch", o->micro_batch, "windows (loss, recall) or candidate sequences (choice) per forward pass")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "auto (the GPU when there is one), cpu or cuda")
      ->check(CLI::IsMember(choice_strings<DeviceChoice>()));
  cmd->add_option("--precision", o->precision, "fp32, or bf16 (mixed precision, on the GPU only)")
      ->check(CLI::IsMember(choice_strings<Precision>()))
      ->capture_default_str();
  return [o] {
    std::vector<Pattern> patterns;
    for (const std::string& text : o->patterns) patterns.push_back(Pattern::parse(text));
    const ModelConfig config = read_checkpoint_model_config(o->checkpoint);
    require_input(o->micro_batch >= 1, "--micro-batch must be at least 1");
    if (o->task == "choice")
      run_choice_task(*o, config, patterns);
    else if (o->task == "recall")
      run_recall_task(*o, config, patterns);
    else
      run_loss_task(*o, config, patterns);
  };
}

}  // namespace ratplus::cli
