// `ratplus data prepare`: real text to llm.c training and validation shards through a SentencePiece model.
// The parts: readers that stream documents out of plain text and JSON Lines files, the hash rule that sends a
// document to validation, a writer that cuts one split's token stream into shards of a fixed size, and the
// pipeline that tokenizes batches of documents on several threads (the output does not depend on how many)
// and writes DIR/manifest.json. Bad input is an InputError naming the file (and line).
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ratplus {

// Parses a positive token count with an optional suffix K, M or B (10^3, 10^6, 10^9), e.g. "100M";
// InputError naming `option` when it is not one or is below 1.
int64_t parse_token_count(const std::string& text, const std::string& option);

// 64-bit FNV-1a of the bytes.
uint64_t fnv1a64(std::string_view bytes);

// Where a document falls in [0, 1): (splitmix64(fnv1a64(text)) >> 11) * 2^-53. It goes to validation when
// this is below the validation fraction, so the split depends on the text alone.
double split_position(std::string_view text);

// Documents of one input file, read a line at a time. By extension:
//  - `.txt`: documents are separated by a line holding only a form feed (U+000C; a carriage return after
//    it is allowed) or by two or more blank lines (a blank line holds only spaces, tabs or a carriage
//    return), so a file without such a separator is one document. A document is its lines joined with
//    "\n" (no final newline), its leading and trailing blank lines dropped; single blank lines inside it
//    are kept.
//  - `.jsonl`: every non-blank line is a JSON object whose string field `text_field` is one document.
// Empty documents are skipped. Any other extension is an InputError.
class DocumentReader {
 public:
  DocumentReader(const std::string& path, const std::string& text_field);

  // The next document into `text`; false at the end of the file. A line that is not a JSON object with the
  // string field is an InputError naming the file and the line number.
  bool next(std::string& text);

  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool next_line(std::string& line);
  bool next_text_document(std::string& text);
  bool next_json_document(std::string& text);

  std::string path_, text_field_;
  bool jsonl_;
  std::ifstream in_;
  int64_t line_number_ = 0;
  uint64_t bytes_read_ = 0;
  std::string pending_;  // .txt: the first line of the next document, read while looking for a separator
  bool has_pending_ = false;
};

// One split's token stream cut into llm.c shards DIR/PREFIX_000000.bin, DIR/PREFIX_000001.bin, ... of exactly
// shard_tokens tokens each but the last (documents continue across shards, as the shards are read in order).
class ShardWriter {
 public:
  struct Shard {
    std::string file;  // name within the directory
    int64_t tokens;
  };

  // version: 1 (uint16 tokens) or 7 (uint32).
  ShardWriter(std::string dir, std::string prefix, int64_t shard_tokens, int version);

  void append(const std::vector<int32_t>& document);
  void finish();  // writes the last, partial shard (none when it would be empty)

  const std::vector<Shard>& shards() const { return shards_; }
  int64_t documents() const { return documents_; }
  int64_t tokens() const { return tokens_; }

 private:
  void flush();

  std::string dir_, prefix_;
  int64_t shard_tokens_;
  int version_;
  std::vector<uint32_t> buffer_;
  std::vector<Shard> shards_;
  int64_t documents_ = 0, tokens_ = 0;
};

struct PrepareOptions {
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string out_dir;
  double val_fraction = 0.005;
  int64_t shard_tokens = 100'000'000;
  bool eos = false;
  std::string text_field = "text";
  int threads = 1;
};

struct PrepareProgress {
  uint64_t bytes_read = 0, bytes_total = 0;
  int64_t documents = 0, tokens = 0;
  double seconds = 0;
};

// Tokenizes every document of the inputs (BOS first, EOS last with `eos`), splits them by split_position and
// writes the shards and DIR/manifest.json; returns the manifest. The output directory must be absent or
// empty; on any failure the files written so far are removed (and the directory, when this call made it).
// `progress` is called after every batch of documents.
nlohmann::json prepare_dataset(const PrepareOptions& options,
                               const std::function<void(const PrepareProgress&)>& progress);

}  // namespace ratplus
