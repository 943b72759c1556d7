// Synthetic documents (integer-only arithmetic on a splitmix64 generator, so every platform produces the
// same tokens) and atomic writers for llm.c and flat token files.
#include "data/synthetic.h"


#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/token_shard.h"

namespace ratplus {
namespace {

// The splitmix64 output function: a bijective mix of 64 bits.
uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform enough in [0, n) for data generation (n > 0).
  uint64_t below(uint64_t n) { return next() % n; }
  // Uniform in [lo, hi].
  int64_t between(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(below(uint64_t(hi - lo + 1))); }

 private:
  uint64_t state_;
};

// Writes the documents of synthesize_tokens. Content tokens are 1 .. vocab-1.
class DocumentWriter {
 public:
  DocumentWriter(int64_t vocab, uint64_t seed)
      : content_(uint64_t(vocab) - 1), table_seed_(mix64(0x5eed7ab1eULL)), rng_(seed) {}

  void document(std::vector<uint32_t>& out) {
    const size_t end = out.size() + size_t(rng_.between(32, 512));
    uint32_t last = skewed_unigram();
    while (out.size() < end) {
      switch (rng_.below(3)) {
        case 0: last = skewed_text(out, last, rng_.between(8, 40)); break;
        case 1: last = arithmetic_run(out, rng_.between(8, 32)); break;
        default: last = copy(out, last); break;
      }
    }
    out.push_back(kSyntheticEosId);
  }

 private:
  uint32_t content_token(uint64_t index) const { return uint32_t(1 + index % content_); }

  // The minimum of three uniform draws: small ids are much more frequent than large ones.
  uint32_t skewed_unigram() {
    const uint64_t a = rng_.below(content_), b = rng_.below(content_), c = rng_.below(content_);
    return content_token(std::min({a, b, c}));
  }

  // One of the four fixed likely successors of `token`, chosen by a hash of the table seed.
  uint32_t successor(uint32_t token, uint64_t choice) const {
    return content_token(mix64(table_seed_ ^ (uint64_t(token) << 2 | choice)));
  }

  uint32_t skewed_text(std::vector<uint32_t>& out, uint32_t last, int64_t length) {
    for (int64_t i = 0; i < length; ++i) {
      last = rng_.below(4) != 0 ? successor(last, rng_.below(4)) : skewed_unigram();
      out.push_back(last);
    }
    return last;
  }

  uint32_t arithmetic_run(std::vector<uint32_t>& out, int64_t length) {
    const uint64_t start = rng_.below(content_), step = uint64_t(rng_.between(1, 3));
    for (int64_t i = 0; i < length; ++i) out.push_back(content_token(start + uint64_t(i) * step));
    return out.back();
  }

  uint32_t copy(std::vector<uint32_t>& out, uint32_t last) {
    std::vector<uint32_t> span(size_t(rng_.between(4, 16)));
    for (uint32_t& token : span) token = content_token(rng_.below(content_));
    out.insert(out.end(), span.begin(), span.end());
    skewed_text(out, last, rng_.between(0, 8));
    out.insert(out.end(), span.begin(), span.end());
    return span.back();
  }

  uint64_t content_;
  uint64_t table_seed_;
  SplitMix64 rng_;
};

void append_le(std::vector<unsigned char>& bytes, uint32_t value, int width) {
  for (int b = 0; b < width; ++b) bytes.push_back(static_cast<unsigned char>(value >> (8 * b)));
}

void require_16_bit(const std::string& path, const std::vector<uint32_t>& tokens) {
  const auto wide = std::find_if(tokens.begin(), tokens.end(), [](uint32_t t) { return t > 0xffffu; });
  if (wide == tokens.end()) return;
  throw InputError("cannot write token file '" + path + "' with 16-bit tokens: token " + std::to_string(*wide) +
                   " at offset " + std::to_string(wide - tokens.begin()) + " does not fit");
}

// Writes header bytes then the tokens, width bytes each, in chunks.
void write_token_file(const std::string& path, std::vector<unsigned char> header,
                      const std::vector<uint32_t>& tokens, int width) {
  constexpr size_t kChunkTokens = size_t(1) << 16;
  AtomicFile file(path);
  std::ofstream out(file.temporary(), std::ios::binary | std::ios::trunc);
  const auto write = [&](const std::vector<unsigned char>& bytes) {
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  write(header);
  std::vector<unsigned char> chunk;
  for (size_t begin = 0; begin < tokens.size() && out; begin += kChunkTokens) {
    chunk.clear();
    const size_t end = std::min(tokens.size(), begin + kChunkTokens);
    for (size_t i = begin; i < end; ++i) append_le(chunk, tokens[i], width);
    write(chunk);
  }
  out.close();
  require_input(!out.fail(), "cannot write token file '" + path + "': " + std::strerror(errno));
  file.commit();
}

}  // namespace

std::vector<uint32_t> synthesize_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  require_input(n >= 0, "synthetic token count must be non-negative, got " + std::to_string(n));
  require_input(vocab >= 2, "synthetic vocabulary must have at least 2 tokens, got " + std::to_string(vocab));
  DocumentWriter writer(vocab, seed);
  std::vector<uint32_t> tokens;
  tokens.reserve(size_t(n) + 1024);
  while (int64_t(tokens.size()) < n) writer.document(tokens);
  tokens.resize(size_t(n));
  return tokens;
}

void write_llmc_shard(const std::string& path, const std::vector<uint32_t>& tokens, int version) {
  require_input(version == kLlmcVersionU16 || version == kLlmcVersionU32,
                "cannot write token file '" + path + "': unsupported llm.c version " + std::to_string(version) +
                    " (expected " + std::to_string(kLlmcVersionU16) + " or " + std::to_string(kLlmcVersionU32) +
                    ")");
  require_input(tokens.size() <= size_t(kLlmcMaxTokens),
                "cannot write token file '" + path + "': " + std::to_string(tokens.size()) +
                    " tokens do not fit the llm.c header's int32 count");
  const bool narrow = version == kLlmcVersionU16;
  if (narrow) require_16_bit(path, tokens);
  std::vector<unsigned char> header;
  append_le(header, uint32_t(narrow ? kLlmcMagicU16 : kLlmcMagicU32), 4);
  append_le(header, uint32_t(version), 4);
  append_le(header, uint32_t(tokens.size()), 4);
  header.resize(size_t(kLlmcHeaderBytes), 0);
  write_token_file(path, std::move(header), tokens, narrow ? 2 : 4);
}

void write_flat_shard(const std::string& path, const std::vector<uint32_t>& tokens, bool u32) {
  if (!u32) require_16_bit(path, tokens);
  write_token_file(path, {}, tokens, u32 ? 4 : 2);
}

}  // namespace ratplus
