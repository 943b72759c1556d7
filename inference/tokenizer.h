// Text to token ids and back through a SentencePiece model (the sentencepiece library; e.g. the LLaMA-2
// `tokenizer.model`). Builds without the library have the class but every constructor call is an InputError
// saying so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ratplus {

class Tokenizer {
 public:
  // InputError naming the file when it cannot be read as a SentencePiece model.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();

  int64_t vocab_size() const;
  int32_t bos_id() const;  // −1 when the model has none
  int32_t eos_id() const;

  // The ids of `text`, after the BOS id when `with_bos` (and the model has one).
  std::vector<int32_t> encode(const std::string& text, bool with_bos) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  struct Processor;
  std::string path_;
  std::unique_ptr<Processor> processor_;
};

}  // namespace ratplus
