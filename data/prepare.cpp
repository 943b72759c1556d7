// Document readers, the hash split, the shard writer and the multi-threaded tokenizing pipeline of
// `ratplus data prepare` (see prepare.h).
#include "data/prepare.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_line.h"
#include "core/rng.h"
#include "data/synthetic.h"
#include "data/token_shard.h"
#include "inference/tokenizer.h"

namespace ratplus {
namespace fs = std::filesystem;
namespace {

constexpr size_t kBatchBytesPerThread = size_t(1) << 20;  // text tokenized per thread between writes

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_jsonl_path(const std::string& path) { return ends_with(path, ".jsonl"); }
bool is_text_path(const std::string& path) { return ends_with(path, ".txt"); }

bool is_blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

bool is_form_feed(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line == "\f";
}

}  // namespace

int64_t parse_token_count(const std::string& text, const std::string& option) {
  const auto fail = [&] {
    throw InputError(option + " must be a positive whole number with an optional suffix K, M or B (e.g. 100M), got '" +
                     text + "'");
  };
  const size_t digits = size_t(std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; }) -
                               text.begin());
  if (digits == 0 || digits > 18) fail();
  const std::string suffix = text.substr(digits);
  int64_t scale = 1;
  if (suffix == "K" || suffix == "k") {
    scale = 1'000;
  } else if (suffix == "M" || suffix == "m") {
    scale = 1'000'000;
  } else if (suffix == "B" || suffix == "b") {
    scale = 1'000'000'000;
  } else if (!suffix.empty()) {
    fail();
  }
  const int64_t value = std::stoll(text.substr(0, digits));
  if (value < 1 || value > std::numeric_limits<int64_t>::max() / scale) fail();
  return value * scale;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return hash;
}

double split_position(std::string_view text) { return double(splitmix64(fnv1a64(text)) >> 11) * 0x1.0p-53; }

DocumentReader::DocumentReader(const std::string& path, const std::string& text_field)
    : path_(path), text_field_(text_field), jsonl_(is_jsonl_path(path)) {
  require_input(jsonl_ || is_text_path(path),
                "--input: '" + path + "' has an unknown extension (expected .txt or .jsonl)");
  in_.open(path, std::ios::binary);
  require_input(in_.is_open(), "--input: cannot open '" + path + "'");
}

bool DocumentReader::next(std::string& text) { return jsonl_ ? next_json_document(text) : next_text_document(text); }

bool DocumentReader::next_line(std::string& line) {
  if (!std::getline(in_, line)) {
    if (in_.bad()) throw std::runtime_error("cannot read '" + path_ + "' after line " + std::to_string(line_number_));
    return false;
  }
  ++line_number_;
  bytes_read_ += line.size() + (in_.eof() ? 0 : 1);
  return true;
}

bool DocumentReader::next_text_document(std::string& text) {
  text.clear();
  bool started = false;
  std::vector<std::string> blanks;  // blank lines after the document's last non-blank line
  std::string line;
  while (has_pending_ || next_line(line)) {
    if (has_pending_) {
      line = std::move(pending_);
      has_pending_ = false;
    }
    if (is_form_feed(line)) {
      if (started) return true;
      continue;
    }
    if (is_blank(line)) {
      if (started) blanks.push_back(line);
      continue;
    }
    if (started && blanks.size() >= 2) {
      pending_ = std::move(line);
      has_pending_ = true;
      return true;
    }
    for (const std::string& blank : blanks) text += "\n" + blank;  // empty unless started
    blanks.clear();
    if (started) text += '\n';
    text += line;
    started = true;
  }
  return started;
}

bool DocumentReader::next_json_document(std::string& text) {
  std::string line;
  while (next_line(line)) {
    if (is_blank(line)) continue;
    const std::string where = path_ + ":" + std::to_string(line_number_);
    nlohmann::json object = parse_json_line(line, where);
    require_input(object.is_object(), where + ": not a JSON object");
    const auto field = object.find(text_field_);
    require_input(field != object.end(), where + ": no field \"" + text_field_ + "\" (see --text-field)");
    require_input(field->is_string(), where + ": field \"" + text_field_ + "\" is not a string");
    if (field->get_ref<const std::string&>().empty()) continue;
    text = std::move(field->get_ref<std::string&>());
    return true;
  }
  return false;
}

ShardWriter::ShardWriter(std::string dir, std::string prefix, int64_t shard_tokens, int version)
    : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(shard_tokens), version_(version) {}

void ShardWriter::append(const std::vector<int32_t>& document) {
  ++documents_;
  tokens_ += int64_t(document.size());
  for (size_t i = 0; i < document.size();) {
    const size_t take = std::min(document.size() - i, size_t(shard_tokens_) - buffer_.size());
    buffer_.insert(buffer_.end(), document.begin() + ptrdiff_t(i), document.begin() + ptrdiff_t(i + take));
    i += take;
    if (int64_t(buffer_.size()) == shard_tokens_) flush();
  }
}

void ShardWriter::finish() {
  if (!buffer_.empty()) flush();
}

void ShardWriter::flush() {
  const std::string name = fmt::format("{}_{:06d}.bin", prefix_, shards_.size());
  write_llmc_shard((fs::path(dir_) / name).string(), buffer_, version_);
  shards_.push_back({name, int64_t(buffer_.size())});
  buffer_.clear();
}

namespace {

void validate_options(const PrepareOptions& o) {
  require_input(!o.inputs.empty(), "--input: no input files given");
  require_input(o.val_fraction >= 0 && o.val_fraction < 1,
                fmt::format("--val-fraction must be in [0, 1), got {}", o.val_fraction));
  require_input(o.shard_tokens >= 1 && o.shard_tokens <= kLlmcMaxTokens,
                fmt::format("--shard-tokens must be in [1, 2^31 - 1] (an llm.c header counts tokens in 32 bits), "
                            "got {}",
                            o.shard_tokens));
  require_input(o.threads >= 1, fmt::format("--threads must be at least 1, got {}", o.threads));
}

void validate_tokenizer(const Tokenizer& tokenizer, const PrepareOptions& o) {
  require_input(tokenizer.bos_id() >= 0, "--tokenizer: '" + o.tokenizer + "' has no BOS token");
  require_input(!o.eos || tokenizer.eos_id() >= 0, "--tokenizer: '" + o.tokenizer + "' has no EOS token (--eos)");
}

// The byte count of every input, after checking that it exists, is a non-empty regular file and has a
// known extension.
std::vector<uint64_t> input_sizes(const std::vector<std::string>& inputs) {
  std::vector<uint64_t> sizes;
  for (const std::string& path : inputs) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    require_input(fs::exists(status), "--input: '" + path + "' does not exist");
    require_input(fs::is_regular_file(status), "--input: '" + path + "' is not a regular file");
    require_input(is_jsonl_path(path) || is_text_path(path),
                  "--input: '" + path + "' has an unknown extension (expected .txt or .jsonl)");
    sizes.push_back(fs::file_size(path));
    require_input(sizes.back() > 0, "--input: '" + path + "' is empty");
  }
  return sizes;
}

// Makes the output directory (true) or checks that the existing one is empty (false).
bool make_output_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    require_input(fs::is_directory(dir, ec), "--out: '" + dir + "' exists and is not a directory");
    require_input(fs::is_empty(dir, ec), "--out: '" + dir + "' is not empty (give a new or empty directory)");
    return false;
  }
  fs::create_directories(dir, ec);
  require_input(!ec, "--out: cannot create '" + dir + "': " + ec.message());
  return true;
}

void remove_outputs(const std::string& dir, const std::vector<const ShardWriter*>& writers, bool made_dir) {
  std::error_code ignored;
  for (const ShardWriter* writer : writers)
    for (const ShardWriter::Shard& shard : writer->shards()) fs::remove(fs::path(dir) / shard.file, ignored);
  if (made_dir) fs::remove(dir, ignored);
}

// Up to about `bytes` of text: false when the reader ran out.
bool read_batch(DocumentReader& reader, std::vector<std::string>& batch, size_t bytes) {
  batch.clear();
  size_t held = 0;
  std::string text;
  while (held < bytes) {
    if (!reader.next(text)) return false;
    held += text.size();
    batch.push_back(std::move(text));
  }
  return true;
}

// Each document's ids (BOS first, EOS last with `eos`), in the documents' order, tokenized on `threads`
// threads that take documents one at a time.
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tokenizer, const std::vector<std::string>& documents,
                                               bool eos, int threads) {
  std::vector<std::vector<int32_t>> ids(documents.size());
  std::atomic<size_t> next{0};
  const size_t workers = std::clamp<size_t>(documents.size(), 1, size_t(threads));
  std::vector<std::exception_ptr> errors(workers);
  const auto work = [&](size_t worker) {
    try {
      for (size_t i = next++; i < documents.size(); i = next++) {
        ids[i] = tokenizer.encode(documents[i], true);
        if (eos) ids[i].push_back(tokenizer.eos_id());
      }
    } catch (...) {
      errors[worker] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(work, w);
  work(0);
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& error : errors)
    if (error) std::rethrow_exception(error);
  return ids;
}

nlohmann::json split_json(const ShardWriter& writer) {
  nlohmann::json shards = nlohmann::json::array();
  for (const ShardWriter::Shard& shard : writer.shards()) shards.push_back({{"file", shard.file}, {"tokens", shard.tokens}});
  return {{"documents", writer.documents()}, {"tokens", writer.tokens()}, {"shards", shards}};
}

std::string file_fnv1a64(const std::string& path) {
  const MappedFile file(path);
  return fmt::format("{:016x}", fnv1a64({reinterpret_cast<const char*>(file.data()), file.size()}));
}

}  // namespace

nlohmann::json prepare_dataset(const PrepareOptions& o, const std::function<void(const PrepareProgress&)>& progress) {
  validate_options(o);
  const Tokenizer tokenizer(o.tokenizer);
  validate_tokenizer(tokenizer, o);
  const std::vector<uint64_t> sizes = input_sizes(o.inputs);
  const bool made_dir = make_output_dir(o.out_dir);
  const int version = tokenizer.vocab_size() <= 65536 ? kLlmcVersionU16 : kLlmcVersionU32;
  ShardWriter train(o.out_dir, "train", o.shard_tokens, version), val(o.out_dir, "val", o.shard_tokens, version);
  try {
    const auto start = std::chrono::steady_clock::now();
    PrepareProgress state;
    for (const uint64_t size : sizes) state.bytes_total += size;
    nlohmann::json inputs = nlohmann::json::array();
    std::vector<std::string> batch;
    for (size_t f = 0; f < o.inputs.size(); ++f) {
      DocumentReader reader(o.inputs[f], o.text_field);
      const uint64_t bytes_before = state.bytes_read;
      const int64_t documents_before = state.documents;
      for (bool more = true; more;) {
        more = read_batch(reader, batch, kBatchBytesPerThread * size_t(o.threads));
        const auto ids = encode_batch(tokenizer, batch, o.eos, o.threads);
        for (size_t i = 0; i < batch.size(); ++i) {
          (split_position(batch[i]) < o.val_fraction ? val : train).append(ids[i]);
          state.tokens += int64_t(ids[i].size());
        }
        state.documents += int64_t(batch.size());
        state.bytes_read = bytes_before + reader.bytes_read();
        state.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        progress(state);
      }
      require_input(state.documents > documents_before, "--input: '" + o.inputs[f] + "' holds no document");
      inputs.push_back({{"path", o.inputs[f]}, {"bytes", sizes[f]}, {"documents", state.documents - documents_before}});
    }
    train.finish();
    val.finish();
    const nlohmann::json manifest = {
        {"format", "llmc"},
        {"llmc_version", version},
        {"tokenizer",
         {{"path", o.tokenizer},
          {"fnv1a64", file_fnv1a64(o.tokenizer)},
          {"vocab_size", tokenizer.vocab_size()},
          {"bos_id", tokenizer.bos_id()},
          {"eos_id", tokenizer.eos_id()},
          {"eos_appended", o.eos}}},
        {"inputs", inputs},
        {"options",
         {{"val_fraction", o.val_fraction}, {"shard_tokens", o.shard_tokens}, {"eos", o.eos}, {"text_field", o.text_field}}},
        {"split_rule", "val when (splitmix64(fnv1a64(text)) >> 11) * 2^-53 < val_fraction"},
        {"train", split_json(train)},
        {"val", split_json(val)}};
    write_text_file_atomically((fs::path(o.out_dir) / "manifest.json").string(), manifest.dump(2) + "\n");
    return manifest;
  } catch (...) {
    remove_outputs(o.out_dir, {&train, &val}, made_dir);
    throw;
  }
}

}  // namespace ratplus
