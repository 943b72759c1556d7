// Opening, validating and reading token shards; concatenating them into a stream and cutting windows.
#include "data/token_shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "core/error.h"

namespace ratplus {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError("token file '" + path + "': " + what);
}

uint32_t load_u16_le(const unsigned char* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

uint32_t load_u32_le(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

int32_t load_i32_le(const unsigned char* p) { return static_cast<int32_t>(load_u32_le(p)); }

bool is_llmc_magic(int32_t value) { return value == kLlmcMagicU16 || value == kLlmcMagicU32; }

bool has_glob_characters(const std::string& text) { return text.find_first_of("*?[") != std::string::npos; }

// The files a pattern names, sorted bytewise. A plain path is kept as is, so a missing file is reported
// by the open that follows (with the system's reason).
std::vector<std::string> expand_pattern(const std::string& pattern) {
  if (!has_glob_characters(pattern)) return {pattern};
  glob_t found{};
  const int rc = glob(pattern.c_str(), 0, nullptr, &found);
  std::vector<std::string> paths(found.gl_pathv, found.gl_pathv + (rc == 0 ? found.gl_pathc : 0));
  globfree(&found);
  require_input(rc == 0, "data pattern '" + pattern + "' matches no files");
  std::sort(paths.begin(), paths.end());
  return paths;
}

void check_range(int64_t begin, int64_t n, int64_t size, const char* what) {
  if (begin < 0 || n < 0 || begin > size - n) {
    throw std::out_of_range(std::string(what) + ": range [" + std::to_string(begin) + ", " +
                            std::to_string(begin + n) + ") outside [0, " + std::to_string(size) + ")");
  }
}

}  // namespace

ShardFormat parse_shard_format(const std::string& text) { return parse_choice<ShardFormat>(text, "data format"); }

MappedFile::MappedFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it is then refused as not a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat info {};
  const bool stat_ok = ::fstat(fd, &info) == 0;
  if (!stat_ok || !S_ISREG(info.st_mode)) {
    const std::string reason = stat_ok ? "not a regular file" : std::strerror(errno);
    ::close(fd);
    fail(path, "cannot open: " + reason);
  }
  size_ = static_cast<size_t>(info.st_size);
  if (size_ > 0) {
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int mmap_errno = errno;
    ::close(fd);
    if (mapped == MAP_FAILED) fail(path, std::string("cannot map: ") + std::strerror(mmap_errno));
    data_ = static_cast<const unsigned char*>(mapped);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() { unmap(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    unmap();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedFile::unmap() {
  if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

TokenShard::TokenShard(const std::string& path, ShardFormat format)
    : path_(path), file_(path), format_(format) {
  if (file_.size() == 0) fail(path_, "empty file");
  switch (format) {
    case ShardFormat::automatic: open_llmc(true); break;
    case ShardFormat::llmc: open_llmc(false); break;
    case ShardFormat::flat_u16: open_flat(2); break;
    case ShardFormat::flat_u32: open_flat(4); break;
  }
}

void TokenShard::open_llmc(bool automatic) {
  const int64_t bytes = static_cast<int64_t>(file_.size());
  const unsigned char* header = file_.data();
  if (automatic && (bytes < 4 || !is_llmc_magic(load_i32_le(header)))) {
    const std::string found = bytes < 4 ? std::to_string(bytes) + " bytes long"
                                        : "first int32 is " + std::to_string(load_i32_le(header));
    fail(path_, "not an llm.c shard (" + found + "); choose the format flat_u16 or flat_u32 explicitly");
  }
  if (bytes < kLlmcHeaderBytes) {
    fail(path_, "file is " + std::to_string(bytes) + " bytes, shorter than the " +
                    std::to_string(kLlmcHeaderBytes) + "-byte llm.c header");
  }
  const int32_t magic = load_i32_le(header);
  const int32_t version = load_i32_le(header + 4);
  const int32_t count = load_i32_le(header + 8);
  if (!is_llmc_magic(magic)) {
    fail(path_, "bad magic " + std::to_string(magic) + " (expected " + std::to_string(kLlmcMagicU16) +
                    " or " + std::to_string(kLlmcMagicU32) + " for the llm.c format)");
  }
  const int32_t expected_version = magic == kLlmcMagicU16 ? kLlmcVersionU16 : kLlmcVersionU32;
  if (version != expected_version) {
    fail(path_, "unsupported version " + std::to_string(version) + " for magic " + std::to_string(magic) +
                    " (expected " + std::to_string(expected_version) + ")");
  }
  if (count < 0) fail(path_, "negative token count " + std::to_string(count) + " in the header");
  format_ = ShardFormat::llmc;
  token_bytes_ = magic == kLlmcMagicU16 ? 2 : 4;
  header_bytes_ = kLlmcHeaderBytes;
  size_ = count;
  const int64_t expected_bytes = kLlmcHeaderBytes + size_ * token_bytes_;
  if (bytes != expected_bytes) {
    fail(path_, "size mismatch: the header says " + std::to_string(count) + " tokens of " +
                    std::to_string(token_bytes_) + " bytes, so the file should be " +
                    std::to_string(expected_bytes) + " bytes, but it is " + std::to_string(bytes) + " bytes");
  }
}

void TokenShard::open_flat(int token_bytes) {
  const int64_t bytes = static_cast<int64_t>(file_.size());
  if (bytes % token_bytes != 0) {
    fail(path_, "size " + std::to_string(bytes) + " bytes is not a multiple of the token size " +
                    std::to_string(token_bytes) + (token_bytes == 2 ? " (flat_u16)" : " (flat_u32)"));
  }
  token_bytes_ = token_bytes;
  header_bytes_ = 0;
  size_ = bytes / token_bytes;
}

uint32_t TokenShard::token_unchecked(int64_t i) const {
  const unsigned char* p = file_.data() + header_bytes_ + i * token_bytes_;
  return token_bytes_ == 2 ? load_u16_le(p) : load_u32_le(p);
}

uint32_t TokenShard::token(int64_t i) const {
  check_range(i, 1, size_, path_.c_str());
  return token_unchecked(i);
}

void TokenShard::read(int64_t begin, int64_t n, int64_t vocab_size, int32_t* out) const {
  check_range(begin, n, size_, path_.c_str());
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t id = token_unchecked(begin + i);
    if (id >= static_cast<uint64_t>(vocab_size)) {
      fail(path_, "token id " + std::to_string(id) + " at token offset " + std::to_string(begin + i) +
                      " is not below the vocabulary size " + std::to_string(vocab_size));
    }
    out[i] = static_cast<int32_t>(id);
  }
}

TokenStream::TokenStream(const std::vector<std::string>& paths_or_globs, ShardFormat format,
                         int64_t vocab_size)
    : starts_{0}, vocab_size_(vocab_size) {
  require_input(vocab_size > 0, "vocabulary size must be positive, got " + std::to_string(vocab_size));
  require_input(!paths_or_globs.empty(), "no token files given");
  for (const std::string& pattern : paths_or_globs) {
    for (const std::string& path : expand_pattern(pattern)) {
      shards_.emplace_back(path, format);
      starts_.push_back(starts_.back() + shards_.back().size());
    }
  }
}

void TokenStream::read(int64_t offset, int64_t n, int32_t* out) const {
  check_range(offset, n, size(), "token stream");
  // The shard holding `offset`: the last one starting at or before it (empty shards are skipped over).
  size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin()) - 1;
  while (n > 0) {
    const int64_t begin = offset - starts_[s];
    const int64_t take = std::min(n, shards_[s].size() - begin);
    shards_[s].read(begin, take, vocab_size_, out);
    offset += take;
    out += take;
    n -= take;
    ++s;
  }
}

int64_t TokenStream::num_windows(int64_t seq_len) const {
  if (seq_len <= 0) throw std::invalid_argument("sequence length must be positive");
  return std::max<int64_t>(size() - 1, 0) / seq_len;
}

void TokenStream::window(int64_t k, int64_t seq_len, int64_t eos_id, int32_t* inputs, int32_t* targets) const {
  const int64_t count = num_windows(seq_len);
  if (k < 0 || k >= count) {
    throw std::out_of_range("window " + std::to_string(k) + " outside [0, " + std::to_string(count) + ")");
  }
  const int64_t start = k * seq_len;
  read(start, seq_len, inputs);
  std::copy(inputs + 1, inputs + seq_len, targets);
  read(start + seq_len, 1, targets + seq_len - 1);
  if (eos_id < 0) return;
  for (int64_t t = 0; t < seq_len; ++t) {
    if (inputs[t] == eos_id) targets[t] = -1;
  }
}

}  // namespace ratplus
