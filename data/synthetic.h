// Synthetic token data with structure a tiny model can visibly learn, and writers for the shard formats
// of SPEC §5 (llm.c and flat), used by tests, the quickstart and `ratplus data`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ratplus {

// The token that ends every synthetic document (use eos_id 0 when training on synthetic data).
inline constexpr uint32_t kSyntheticEosId = 0;

// n tokens with ids in [0, vocab), identical on every platform for a given seed. The bigram table is the
// same for every seed, so shards made with different seeds (training and validation data) are samples of
// one distribution and differ only in their draws. The stream is a sequence
// of documents, each ended by kSyntheticEosId and made of segments of three kinds:
//  - skewed text: a fixed sparse bigram table (each token has four likely successors) mixed with a
//    unigram distribution that favours small ids;
//  - arithmetic runs: c, c+d, c+2d, ... (mod the content vocabulary) with a small step d;
//  - copies: a random span, a short stretch of skewed text, then the same span again.
// vocab must be at least 2 (the end-of-document token and one content token); n must be non-negative.
std::vector<uint32_t> synthesize_tokens(int64_t n, int64_t vocab, uint64_t seed);

// Writes an llm.c shard (version 1: uint16 tokens, version 7: uint32 tokens) atomically: the bytes go to
// path + ".tmp", are flushed to disk, then renamed to path. InputError for another version, a token that
// does not fit in 16 bits under version 1, more tokens than the int32 header can count, or a failed write.
void write_llmc_shard(const std::string& path, const std::vector<uint32_t>& tokens, int version);

// Writes a headerless array of uint32 (u32) or uint16 tokens, atomically as above. InputError when a token
// does not fit in 16 bits (without u32) or the write fails.
void write_flat_shard(const std::string& path, const std::vector<uint32_t>& tokens, bool u32);

}  // namespace ratplus
