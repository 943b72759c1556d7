// Fuzz target: the token shard reader (llm.c headers and flat files) in every format, reading every token.
#include <vector>

#include "data/token_shard.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ratplus::fuzz::TempFile file(data, size);
  for (const ratplus::ShardFormat format : {ratplus::ShardFormat::automatic, ratplus::ShardFormat::llmc,
                                            ratplus::ShardFormat::flat_u16, ratplus::ShardFormat::flat_u32}) {
    ratplus::fuzz::refusals_allowed([&] {
      const ratplus::TokenShard shard(file.path(), format);
      std::vector<int32_t> tokens(static_cast<size_t>(shard.size()));
      shard.read(0, shard.size(), int64_t{1} << 32, tokens.data());
    });
  }
  return 0;
}
