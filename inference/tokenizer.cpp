// SentencePiece behind Tokenizer (see tokenizer.h).
#include "inference/tokenizer.h"

#include "core/error.h"

#ifdef RATPLUS_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace ratplus {

#ifdef RATPLUS_HAVE_SENTENCEPIECE

struct Tokenizer::Processor {
  sentencepiece::SentencePieceProcessor sp;
};

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path), processor_(std::make_unique<Processor>()) {
  const auto status = processor_->sp.Load(model_path);
  require_input(status.ok(), "--tokenizer: cannot load '" + model_path + "' as a SentencePiece model: " +
                                 status.ToString());
}

int64_t Tokenizer::vocab_size() const { return processor_->sp.GetPieceSize(); }
int32_t Tokenizer::bos_id() const { return processor_->sp.bos_id(); }
int32_t Tokenizer::eos_id() const { return processor_->sp.eos_id(); }

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool with_bos) const {
  std::vector<int> ids;
  const auto status = processor_->sp.Encode(text, &ids);
  require_input(status.ok(), path_ + ": cannot encode text: " + status.ToString());
  std::vector<int32_t> out;
  if (with_bos && bos_id() >= 0) out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const auto status = processor_->sp.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  require_input(status.ok(), path_ + ": cannot decode ids: " + status.ToString());
  return text;
}

#else

struct Tokenizer::Processor {};

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path) {
  throw InputError("--tokenizer: this build of ratplus has no SentencePiece library (install libsentencepiece-dev "
                   "and rebuild)");
}

int64_t Tokenizer::vocab_size() const { return 0; }
int32_t Tokenizer::bos_id() const { return -1; }
int32_t Tokenizer::eos_id() const { return -1; }
std::vector<int32_t> Tokenizer::encode(const std::string&, bool) const { return {}; }
std::string Tokenizer::decode(const std::vector<int32_t>&) const { return {}; }

#endif

Tokenizer::~Tokenizer() = default;

}  // namespace ratplus
