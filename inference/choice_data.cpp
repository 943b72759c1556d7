// Reading multiple-choice questions from JSONL, text lines through the tokenizer (see choice_data.h).
#include "inference/choice_data.h"

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/error.h"
#include "core/json_line.h"

namespace ratplus {

namespace {

constexpr const char* kWhitespace = " \t\n\r\f\v";

bool is_blank(const std::string& line) { return line.find_first_not_of(kWhitespace) == std::string::npos; }

// The ids of a JSON array of token ids; `what` names it in messages.
std::vector<int32_t> token_ids(const nlohmann::json& value, const std::string& what, int64_t vocab_size) {
  require_input(value.is_array(), what + " is not an array of token ids");
  std::vector<int32_t> ids;
  for (const nlohmann::json& id : value) {
    require_input(id.is_number_integer(), what + " holds " + id.dump() + ", not a token id");
    const auto v = id.get<int64_t>();
    require_input(v >= 0 && v < vocab_size,
                  fmt::format("{} holds token {}, outside the vocabulary of {}", what, v, vocab_size));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

// The array under `key`, holding at least one entry.
const nlohmann::json& endings_array(const nlohmann::json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  require_input(it != object.end(), fmt::format("{}: no \"{}\"", where, key));
  require_input(it->is_array(), fmt::format("{}: \"{}\" is not an array", where, key));
  require_input(!it->empty(), fmt::format("{}: \"{}\" is empty", where, key));
  return *it;
}

void read_token_line(const nlohmann::json& object, const std::string& where, int64_t vocab_size,
                     ChoiceQuestion& q) {
  q.context = token_ids(object.at("context_tokens"), where + ": \"context_tokens\"", vocab_size);
  require_input(!q.context.empty(), where + ": \"context_tokens\" is empty (it needs at least BOS)");
  const nlohmann::json& endings = endings_array(object, "endings_tokens", where);
  for (size_t e = 0; e < endings.size(); ++e) {
    const std::string what = fmt::format("{}: \"endings_tokens\"[{}]", where, e);
    q.endings.push_back(token_ids(endings[e], what, vocab_size));
    require_input(!q.endings.back().empty(), what + " is empty");
    q.ending_lengths.push_back(double(q.endings.back().size()));
  }
}

void read_text_line(const nlohmann::json& object, const std::string& where, const Tokenizer* tokenizer,
                    int64_t vocab_size, ChoiceQuestion& q) {
  require_input(tokenizer != nullptr, where + ": a text question needs --tokenizer");
  const nlohmann::json& context = object.at("context");
  require_input(context.is_string(), where + ": \"context\" is not a string");
  const nlohmann::json& endings = endings_array(object, "endings", where);
  for (size_t e = 0; e < endings.size(); ++e) {
    const std::string what = fmt::format("{}: \"endings\"[{}]", where, e);
    require_input(endings[e].is_string(), what + " is not a string");
    const auto& text = endings[e].get_ref<const std::string&>();
    require_input(!text.empty(), what + " is empty");
    TextChoiceIds ids = text_choice_ids(*tokenizer, context.get_ref<const std::string&>(), text);
    require_input(!ids.context.empty(), where + ": the context is empty and the tokenizer has no BOS");
    require_input(!ids.ending.empty(), what + " gives no token beyond the context's");
    for (const int32_t id : ids.ending)
      require_input(id < vocab_size, fmt::format("{}: the tokenizer gives id {}, outside the model's vocabulary of {}",
                                                 what, id, vocab_size));
    q.context = std::move(ids.context);
    q.endings.push_back(std::move(ids.ending));
    q.ending_lengths.push_back(double(text.size()));
  }
  for (const int32_t id : q.context)
    require_input(id < vocab_size, fmt::format("{}: the tokenizer gives id {}, outside the model's vocabulary of {}",
                                               where, id, vocab_size));
}

ChoiceQuestion parse_question(const std::string& line, const std::string& where, const Tokenizer* tokenizer,
                              int64_t vocab_size) {
  const nlohmann::json object = parse_json_line(line, where);
  require_input(object.is_object(), where + ": not a JSON object");
  ChoiceQuestion q;
  q.where = where;
  if (object.contains("context_tokens"))
    read_token_line(object, where, vocab_size, q);
  else if (object.contains("context"))
    read_text_line(object, where, tokenizer, vocab_size, q);
  else
    throw InputError(where + ": no \"context\" or \"context_tokens\"");
  const auto label = object.find("label");
  require_input(label != object.end(), where + ": no \"label\"");
  require_input(label->is_number_integer(), where + ": \"label\" is not an integer");
  q.label = label->get<int64_t>();
  require_input(q.label >= 0 && q.label < int64_t(q.endings.size()),
                fmt::format("{}: \"label\" {} is not the index of one of the {} endings", where, q.label,
                            q.endings.size()));
  return q;
}

}  // namespace

TextChoiceIds text_choice_ids(const Tokenizer& tokenizer, const std::string& context, const std::string& ending) {
  const size_t kept = context.find_last_not_of(kWhitespace) + 1;  // npos + 1 = 0: all whitespace
  const std::string head = context.substr(0, kept);
  const std::string continuation = context.substr(kept) + (context.empty() ? "" : " ") + ending;
  TextChoiceIds ids;
  ids.context = tokenizer.encode(head, true);
  const std::vector<int32_t> whole = tokenizer.encode(head + continuation, false);
  const size_t context_ids = ids.context.size() - (tokenizer.bos_id() >= 0 ? 1 : 0);
  if (whole.size() > context_ids) ids.ending.assign(whole.begin() + ptrdiff_t(context_ids), whole.end());
  return ids;
}

std::vector<ChoiceQuestion> read_choice_questions(const std::string& path, const Tokenizer* tokenizer,
                                                  int64_t vocab_size) {
  std::error_code error;
  require_input(std::filesystem::is_regular_file(path, error), "--data: '" + path + "' is not a readable file");
  std::ifstream in(path);
  require_input(in.is_open(), "--data: cannot open '" + path + "'");
  std::vector<ChoiceQuestion> questions;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number)
    if (!is_blank(line))
      questions.push_back(parse_question(line, path + ":" + std::to_string(number), tokenizer, vocab_size));
  if (in.bad()) throw std::runtime_error("cannot read '" + path + "'");
  require_input(!questions.empty(), "--data: '" + path + "' holds no question");
  return questions;
}

}  // namespace ratplus
