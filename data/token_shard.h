// Token shards on disk (SPEC §5): llm.c-format and flat files, memory-mapped read-only and validated when
// opened; the stream that concatenates them in order, checks token ids against the vocabulary as it reads,
// and cuts the training/evaluation windows of SPEC §9. Every problem with the files is an InputError that
// names the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config_choices.h"

namespace ratplus {

// Parses "auto", "llmc", "flat_u16" or "flat_u32"; anything else is an InputError.
ShardFormat parse_shard_format(const std::string& text);

// The llm.c header: 256 little-endian int32, [0] magic, [1] version, [2] token count.
inline constexpr int64_t kLlmcHeaderBytes = 1024;
inline constexpr int32_t kLlmcMagicU16 = 20240520;  // goes with version 1: uint16 tokens
inline constexpr int32_t kLlmcMagicU32 = 20240801;  // goes with version 7: uint32 tokens
inline constexpr int32_t kLlmcVersionU16 = 1;
inline constexpr int32_t kLlmcVersionU32 = 7;
inline constexpr int64_t kLlmcMaxTokens = 0x7fffffff;  // the header counts tokens in an int32

// A whole file mapped read-only. An empty file maps to no memory (data() is null, size() is 0).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void unmap();

  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

// One token file. The header (if any) and the file size are validated on opening; token ids are not
// (that needs the vocabulary size: see TokenStream::read).
class TokenShard {
 public:
  TokenShard(const std::string& path, ShardFormat format);

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }  // tokens
  ShardFormat format() const { return format_; }  // as resolved: never automatic
  int token_bytes() const { return token_bytes_; }  // 2 or 4

  // Token i of this file; std::out_of_range outside [0, size()).
  uint32_t token(int64_t i) const;

  // Copies tokens [begin, begin + n) into out. A token >= vocab_size is an InputError naming this file, the
  // token offset within it, the value and the vocabulary size. The range must lie inside the shard.
  void read(int64_t begin, int64_t n, int64_t vocab_size, int32_t* out) const;

 private:
  void open_llmc(bool automatic);
  void open_flat(int token_bytes);
  uint32_t token_unchecked(int64_t i) const;

  std::string path_;
  MappedFile file_;
  ShardFormat format_;
  int token_bytes_ = 0;
  int64_t header_bytes_ = 0;
  int64_t size_ = 0;
};

// Shards concatenated in the order given (each glob expanded and sorted). Reading is const and touches
// only read-only mappings, so several threads may read one stream at once.
class TokenStream {
 public:
  // Each entry of paths_or_globs is a file path or a glob(3) pattern; a pattern that matches nothing, or an
  // empty list, is an InputError.
  TokenStream(const std::vector<std::string>& paths_or_globs, ShardFormat format, int64_t vocab_size);

  int64_t size() const { return starts_.back(); }  // tokens in all shards
  int64_t vocab_size() const { return vocab_size_; }
  const std::vector<TokenShard>& shards() const { return shards_; }

  // Copies tokens [offset, offset + n) of the concatenation into out, across shard boundaries. Token ids
  // are checked against the vocabulary (InputError naming the file and the offset within it);
  // std::out_of_range when the range leaves [0, size()).
  void read(int64_t offset, int64_t n, int32_t* out) const;

  // Windows of SPEC §9: window k is tokens [k*T, k*T + T], so there are (size() - 1) / T of them.
  int64_t num_windows(int64_t seq_len) const;

  // Fills inputs and targets (seq_len each) from window k: inputs are its first T tokens, targets its last
  // T; targets[t] is -1 (ignored) where inputs[t] == eos_id. A negative eos_id means no end-of-document
  // token. std::out_of_range when k is not in [0, num_windows(seq_len)).
  void window(int64_t k, int64_t seq_len, int64_t eos_id, int32_t* inputs, int32_t* targets) const;

 private:
  std::vector<TokenShard> shards_;
  std::vector<int64_t> starts_;  // starts_[i]: offset of shard i in the concatenation; back() = size()
  int64_t vocab_size_;
};

}  // namespace ratplus
