// `ratplus data synth` (a shard of generated tokens with learnable structure), `ratplus data prepare` (text
// files to training and validation shards through a SentencePiece model) and `ratplus data inspect` (what a
// shard holds, decoded as text with a tokenizer).
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "data/prepare.h"
#include "data/synthetic.h"
#include "data/token_shard.h"
#include "inference/tokenizer.h"

namespace ratplus::cli {
namespace {

constexpr int64_t kInspectTokens = 16;

std::string format_duration(double seconds) {
  const int64_t s = int64_t(seconds + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60);
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1'000'000) return fmt::format("{:.1f} kB", double(bytes) / 1e3);
  if (bytes < 1'000'000'000) return fmt::format("{:.1f} MB", double(bytes) / 1e6);
  return fmt::format("{:.2f} GB", double(bytes) / 1e9);
}

std::string progress_line(const PrepareProgress& p) {
  const double rate = p.seconds > 0 ? double(p.tokens) / p.seconds : 0;
  const double done = p.bytes_total ? double(std::min(p.bytes_read, p.bytes_total)) / double(p.bytes_total) : 1;
  const double eta = done > 0 ? p.seconds * (1 - done) / done : 0;
  return fmt::format("{} of {} read, {} documents, {} tokens, {:.0f} tokens/s, ETA {}", format_bytes(p.bytes_read),
                     format_bytes(p.bytes_total), p.documents, p.tokens, rate, format_duration(eta));
}

// Rewrites one line on stderr at most four times a second, and only when stderr is a terminal.
class ProgressLine {
 public:
  void operator()(const PrepareProgress& p) {
    if (!terminal_ || (shown_ && p.seconds - last_ < 0.25)) return;
    std::fprintf(stderr, "\r%s\033[K", progress_line(p).c_str());
    std::fflush(stderr);
    shown_ = true;
    last_ = p.seconds;
  }
  void end() const {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  bool terminal_ = ::isatty(STDERR_FILENO) == 1;
  bool shown_ = false;
  double last_ = 0;
};

void run_prepare(const PrepareOptions& options) {
  ProgressLine line;
  PrepareProgress last;
  const nlohmann::json manifest = prepare_dataset(options, [&](const PrepareProgress& p) {
    last = p;
    line(p);
  });
  line.end();
  spdlog::info("{} in {:.1f} s", progress_line(last), last.seconds);
  for (const char* split : {"train", "val"}) {
    const auto& s = manifest[split];
    spdlog::info("{}: {} documents, {} tokens in {} shards", split, s["documents"].get<int64_t>(),
                 s["tokens"].get<int64_t>(), s["shards"].size());
  }
  spdlog::info("wrote {}/manifest.json", options.out_dir);
}

void inspect_shard(const std::string& path, const std::string& format, const Tokenizer* tokenizer) {
  const TokenShard shard(path, parse_shard_format(format));
  uint32_t lo = UINT32_MAX, hi = 0;
  for (int64_t i = 0; i < shard.size(); ++i) {
    lo = std::min(lo, shard.token(i));
    hi = std::max(hi, shard.token(i));
  }
  fmt::print("{}: format {}, {}-byte tokens, {} tokens, ids {}..{}\n  first:", path, choice_name(shard.format()),
             shard.token_bytes(), shard.size(), shard.size() ? lo : 0, hi);
  std::vector<int32_t> first;
  for (int64_t i = 0; i < std::min(kInspectTokens, shard.size()); ++i) {
    fmt::print(" {}", shard.token(i));
    first.push_back(int32_t(shard.token(i)));
  }
  fmt::print("\n");
  if (!tokenizer) return;
  require_input(hi < uint64_t(tokenizer->vocab_size()) || shard.size() == 0,
                fmt::format("{}: token id {} is not below the tokenizer's vocabulary size {}", path, hi,
                            tokenizer->vocab_size()));
  const nlohmann::json text = tokenizer->decode(first);
  fmt::print("  text: {}\n", text.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

Action add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "make or inspect token shards");
  cmd->require_subcommand(1);
  struct Options {
    std::string out, format = "auto", tokenizer, shard_tokens = "100M";
    std::vector<std::string> inspect;
    int64_t tokens = 1 << 20, vocab = 256;
    uint64_t seed = 0;
    bool synth = false, prepare = false;
    PrepareOptions prepare_options;
  };
  auto o = std::make_shared<Options>();
  auto* synth = cmd->add_subcommand("synth", "write an llm.c shard of generated tokens (documents end with token 0)");
  synth->add_option("--out", o->out, "shard to write")->required();
  synth->add_option("--tokens", o->tokens, "number of tokens");
  synth->add_option("--vocab", o->vocab, "vocabulary size");
  synth->add_option("--seed", o->seed, "random seed");
  synth->callback([o] { o->synth = true; });
  auto* prepare = cmd->add_subcommand("prepare", "tokenize .txt and .jsonl files into train_*.bin and val_*.bin shards");
  PrepareOptions& p = o->prepare_options;
  p.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  prepare->add_option("--tokenizer", p.tokenizer, "SentencePiece model (e.g. LLaMA-2's tokenizer.model)")->required();
  prepare->add_option("--input", p.inputs, "text files: .txt or .jsonl")->required();
  prepare->add_option("--out", p.out_dir, "output directory (new or empty)")->required();
  prepare->add_option("--val-fraction", p.val_fraction, "share of documents for validation, by a hash of the text");
  prepare->add_option("--shard-tokens", o->shard_tokens, "tokens per shard, suffix K, M or B allowed");
  prepare->add_flag("--eos", p.eos, "end every document with EOS");
  prepare->add_option("--text-field", p.text_field, ".jsonl: the field that holds the text");
  prepare->add_option("--threads", p.threads, "tokenizing threads (default: all cores)");
  prepare->callback([o] { o->prepare = true; });
  auto* inspect = cmd->add_subcommand("inspect", "print a shard's format, size and token range");
  inspect->add_option("files", o->inspect, "shards")->required();
  inspect->add_option("--format", o->format, "auto, llmc, flat_u16, flat_u32");
  inspect->add_option("--tokenizer", o->tokenizer, "SentencePiece model: also print the first tokens as text");
  return [o] {
    if (o->prepare) {
      o->prepare_options.shard_tokens = parse_token_count(o->shard_tokens, "--shard-tokens");
      run_prepare(o->prepare_options);
      return;
    }
    if (o->synth) {
      require_input(o->tokens >= 2 && o->tokens <= kLlmcMaxTokens,
                    fmt::format("--tokens must be in [2, 2^31 - 1] (an llm.c header counts tokens in 32 bits), got {}",
                                o->tokens));
      require_input(o->vocab >= 2 && o->vocab <= (int64_t{1} << 31),
                    fmt::format("--vocab must be in [2, 2^31], got {}", o->vocab));
      write_llmc_shard(o->out, synthesize_tokens(o->tokens, o->vocab, o->seed), o->vocab <= 65536 ? 1 : 7);
      spdlog::info("wrote {} ({} tokens, vocab {}, seed {})", o->out, o->tokens, o->vocab, o->seed);
      return;
    }
    const std::unique_ptr<Tokenizer> tokenizer = o->tokenizer.empty() ? nullptr : std::make_unique<Tokenizer>(o->tokenizer);
    for (const std::string& path : o->inspect) inspect_shard(path, o->format, tokenizer.get());
  };
}

}  // namespace ratplus::cli
