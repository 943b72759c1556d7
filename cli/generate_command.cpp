// `ratplus generate --checkpoint FILE (--prompt-tokens 1,2,3 [--prompt-tokens ...] | --prompt-file FILE |
//  --prompt TEXT [--prompt TEXT ...] --tokenizer FILE)
//  --max-new N --pattern P [--temperature 0] [--top-k K] [--top-p P] [--seed S] [--eos-id ID]
//  [--device auto|cpu|cuda] [--precision fp32|bf16] [--cache model|int8] [--tp N] [--json FILE]`: prefill each
//  prompt, then decode N
// tokens for all of them in one batch (SPEC §10). Prints each sequence's generated ids (with a tokenizer, their
// text), streaming them as they come for a single prompt. Text prompts start with the tokenizer's BOS id. With
// --tp N under mpirun -n N the model is split over the N ranks (cli/model_group.h).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/model_checkpoint.h"
#include "cli/commands.h"
#include "cli/model_group.h"
#include "core/atomic_file.h"
#include "core/config_choices.h"
#include "core/device.h"
#include "inference/generate.h"
#include "inference/tokenizer.h"

namespace ratplus::cli {

namespace {

// Token ids separated by commas or white space; `what` names the source in errors.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& what) {
  std::string spaced = text;
  for (char& c : spaced)
    if (c == ',') c = ' ';
  std::istringstream in(spaced);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require_input(used == word.size() && id >= 0 && id <= INT32_MAX,
                  fmt::format("{}: '{}' is not a token id", what, word));
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

std::vector<std::vector<int32_t>> read_prompt_file(const std::string& path) {
  std::ifstream in(path);
  require_input(in.good(), fmt::format("--prompt-file: cannot read '{}'", path));
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    std::vector<int32_t> ids = parse_token_ids(line, fmt::format("{} line {}", path, number));
    if (!ids.empty()) prompts.push_back(std::move(ids));
  }
  require_input(!prompts.empty(), fmt::format("--prompt-file: '{}' holds no prompt", path));
  return prompts;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string text;
  for (const int32_t id : ids) text += (text.empty() ? "" : " ") + std::to_string(id);
  return text;
}

}  // namespace

Action add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "decode tokens from prompts");
  struct Options {
    std::string checkpoint, pattern, prompt_file, json, device = "auto", precision = "fp32", tokenizer,
        cache = "model";
    std::vector<std::string> prompt_tokens, prompt_texts;
    int64_t max_new = 0, top_k = 0, eos_id = -1;
    double temperature = 0, top_p = 1;
    uint64_t seed = 0;
    ModelGroup group;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--checkpoint", o->checkpoint, "HDF5 checkpoint (its /model group is used)")->required();
  auto* tokens = cmd->add_option("--prompt-tokens", o->prompt_tokens, "a prompt as token ids (1,2,3), repeatable");
  auto* file = cmd->add_option("--prompt-file", o->prompt_file, "prompts as token ids, one per line");
  auto* texts = cmd->add_option("--prompt", o->prompt_texts, "a prompt as text (with --tokenizer), repeatable");
  auto* tokenizer = cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (e.g. LLaMA-2's tokenizer.model)");
  tokens->excludes(file);
  texts->excludes(tokens)->excludes(file)->needs(tokenizer);
  cmd->add_option("--max-new", o->max_new, "tokens to generate per prompt")->required();
  cmd->add_option("--pattern", o->pattern, "attention pattern (e.g. dense, dilated:D=16,W=256,P=4, topk:B=64,K=8)")->required();
  cmd->add_option("--temperature", o->temperature, "0 = greedy (argmax), else sampling")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "sample among the k most likely ids (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "sample among the smallest set of ids reaching this probability")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the sampling draws")->capture_default_str();
  cmd->add_option("--eos-id", o->eos_id, "stop a sequence after this token (-1 = none)")->capture_default_str();
  cmd->add_option("--device", o->device, "auto (the GPU when there is one), cpu or cuda")
      ->check(CLI::IsMember(choice_strings<DeviceChoice>()))
      ->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32, or bf16 (bf16 weights and cache, on the GPU only)")
      ->check(CLI::IsMember(choice_strings<Precision>()))
      ->capture_default_str();
  cmd->add_option("--cache", o->cache, "model (the cache in the model's precision) or int8 (8-bit)")
      ->check(CLI::IsMember(choice_strings<CachePrecision>()))
      ->capture_default_str();
  o->group.add_option(*cmd);
  cmd->add_option("--json", o->json, "also write prompts, tokens and log-probs as JSON to this file");
  return [o] {
    std::vector<std::vector<int32_t>> prompts;
    std::unique_ptr<Tokenizer> text;
    if (!o->tokenizer.empty()) text = std::make_unique<Tokenizer>(o->tokenizer);
    if (!o->prompt_texts.empty()) {
      for (const std::string& p : o->prompt_texts) prompts.push_back(text->encode(p, true));  // BOS first, as LLaMA
    } else if (!o->prompt_file.empty()) {
      prompts = read_prompt_file(o->prompt_file);
    } else {
      require_input(!o->prompt_tokens.empty(), "give --prompt-tokens, --prompt-file or --prompt");
      for (const std::string& text : o->prompt_tokens) prompts.push_back(parse_token_ids(text, "--prompt-tokens"));
    }
    const Pattern pattern = Pattern::parse(o->pattern);
    const ModelConfig config = read_checkpoint_model_config(o->checkpoint);
    require_input(!text || text->vocab_size() <= config.vocab_size,
                  fmt::format("--tokenizer: its {} pieces do not fit the model's vocabulary of {}",
                              text ? text->vocab_size() : 0, config.vocab_size));
    for (size_t b = 0; b < prompts.size(); ++b)
      for (const int32_t id : prompts[b])
        require_input(id < config.vocab_size, fmt::format("prompt {}: token {} is outside the vocabulary of {}", b, id,
                                                          config.vocab_size));
    const Device device = o->group.join(config, parse_choice<DeviceChoice>(o->device, "--device"));
    const bool bf16 = parse_choice<Precision>(o->precision, "--precision") == Precision::bf16;
    require_input(!bf16 || device == Device::cuda, "--precision bf16 needs the GPU (--device cuda or auto)");
    Model model(config, device, bf16 ? DType::bf16 : DType::f32, o->group.communicator());
    load_model_weights(o->checkpoint, model);
    const GenerateOptions options{o->max_new, o->eos_id, {o->temperature, o->top_k, o->top_p, o->seed},
                                  parse_choice<CachePrecision>(o->cache, "--cache")};
    // One prompt streams its tokens (ids, or the text they add) as they come; several print a line each.
    const bool prints = o->group.prints(), stream = prints && prompts.size() == 1;
    std::vector<int32_t> so_far;
    std::string shown;
    const TokenCallback print = [&](int64_t, int32_t token) {
      so_far.push_back(token);
      if (text) {
        const std::string now = text->decode(so_far);
        fmt::print("{}", now.substr(std::min(shown.size(), now.size())));
        shown = now;
      } else {
        fmt::print("{} ", token);
      }
      std::fflush(stdout);
    };
    const std::vector<GeneratedSequence> out = generate(model, pattern, prompts, options, stream ? print : TokenCallback{});
    if (!prints) return;
    if (stream) fmt::print("\n");
    else
      for (const GeneratedSequence& s : out) fmt::print("{}\n", text ? text->decode(s.tokens) : ids_text(s.tokens));
    if (o->json.empty()) return;
    nlohmann::json list = nlohmann::json::array();
    for (const GeneratedSequence& s : out)
      list.push_back({{"prompt", s.prompt}, {"tokens", s.tokens}, {"logprobs", s.logprobs}});
    write_text_file_atomically(o->json, nlohmann::json{{"sequences", list}}.dump(2) + "\n");
  };
}

}  // namespace ratplus::cli
