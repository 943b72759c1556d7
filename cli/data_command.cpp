// `ratplus data synth` (a shard of generated tokens with learnable structure) and `ratplus data inspect`
// (what a shard holds).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "cli/commands.h"
#include "core/error.h"
#include "data/synthetic.h"
#include "data/token_shard.h"

namespace ratplus::cli {

Action add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "make or inspect token shards");
  cmd->require_subcommand(1);
  struct Options {
    std::string out, format = "auto";
    std::vector<std::string> inspect;
    int64_t tokens = 1 << 20, vocab = 256;
    uint64_t seed = 0;
    bool synth = false;
  };
  auto o = std::make_shared<Options>();
  auto* synth = cmd->add_subcommand("synth", "write an llm.c shard of generated tokens (documents end with token 0)");
  synth->add_option("--out", o->out, "shard to write")->required();
  synth->add_option("--tokens", o->tokens, "number of tokens");
  synth->add_option("--vocab", o->vocab, "vocabulary size");
  synth->add_option("--seed", o->seed, "random seed");
  synth->callback([o] { o->synth = true; });
  auto* inspect = cmd->add_subcommand("inspect", "print a shard's format, size and token range");
  inspect->add_option("files", o->inspect, "shards")->required();
  inspect->add_option("--format", o->format, "auto, llmc, flat_u16, flat_u32");
  return [o] {
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
    for (const std::string& path : o->inspect) {
      const TokenShard shard(path, parse_shard_format(o->format));
      uint32_t lo = UINT32_MAX, hi = 0;
      for (int64_t i = 0; i < shard.size(); ++i) {
        lo = std::min(lo, shard.token(i));
        hi = std::max(hi, shard.token(i));
      }
      fmt::print("{}: format {}, {}-byte tokens, {} tokens, ids {}..{}\n  first:", path, choice_name(shard.format()),
                 shard.token_bytes(), shard.size(), shard.size() ? lo : 0, hi);
      for (int64_t i = 0; i < std::min<int64_t>(16, shard.size()); ++i) fmt::print(" {}", shard.token(i));
      fmt::print("\n");
    }
  };
}

}  // namespace ratplus::cli
