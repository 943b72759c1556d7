// The questions of a multiple-choice benchmark (HellaSwag, ARC, PIQA, WinoGrande exported to JSONL) as
// token ids: one JSON object per line, either text `{"context": TEXT, "endings": [TEXT, ...], "label": k}`
// (tokenized with a SentencePiece model) or ids `{"context_tokens": [ids], "endings_tokens": [[ids], ...],
// "label": k}`. How text becomes ids is SPEC §10 (`eval --task choice`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inference/tokenizer.h"

namespace ratplus {

struct ChoiceQuestion {
  std::string where;                          // "FILE:LINE", for messages
  std::vector<int32_t> context;               // what precedes every ending (text lines: BOS first), not empty
  std::vector<std::vector<int32_t>> endings;  // each ending's ids, none empty
  std::vector<double> ending_lengths;         // acc_norm's divisors: UTF-8 bytes (text lines) or tokens
  int64_t label = 0;
};

// A text line's context and one ending as ids: the context without its trailing whitespace is tokenized
// alone; the ending's ids are those that tokenizing the whole text (context, its trailing whitespace, a space
// when the context is not empty, ending) has beyond the context's count. The context gets BOS first.
struct TextChoiceIds {
  std::vector<int32_t> context, ending;
};
TextChoiceIds text_choice_ids(const Tokenizer& tokenizer, const std::string& context, const std::string& ending);

// Every question of a JSONL file (blank lines are skipped). InputError naming the file and the line for a line
// that is not such an object, a label outside the endings, no or an empty ending, an id outside [0,
// vocab_size), a text line without `tokenizer`, an empty context; and for a file without any question.
std::vector<ChoiceQuestion> read_choice_questions(const std::string& path, const Tokenizer* tokenizer,
                                                  int64_t vocab_size);

}  // namespace ratplus
