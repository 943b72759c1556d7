// The config keys whose value is one of a few words (SPEC §10), as enums, with the words that name their
// values in YAML files and on the command line. Each word list is written once, here.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace ratplus {

enum class ShardFormat { automatic, llmc, flat_u16, flat_u32 };  // data.format, --format
enum class DataOrder { ordered, random };                        // data.order
enum class Objective { joint, dense, adapt };                    // train.objective
enum class ResumeMode { automatic, never };                      // checkpoint.resume
enum class DeviceChoice { automatic, cpu, cuda };                // runtime.device, --device
enum class Precision { bf16, fp32 };                             // runtime.precision, --precision
// What a decoder's caches hold: keys and values in the model's activation type, or each row and head as 8-bit
// integers and a scale (int8: kernels/cache_append.h; not with top-k block patterns). --cache
enum class CachePrecision { model, int8 };

// The words of a choice's values, in the order of its enumerators.
template <class Choice>
struct ChoiceNames;
template <>
struct ChoiceNames<ShardFormat> {
  static constexpr std::string_view words[] = {"auto", "llmc", "flat_u16", "flat_u32"};
};
template <>
struct ChoiceNames<DataOrder> {
  static constexpr std::string_view words[] = {"ordered", "random"};
};
template <>
struct ChoiceNames<Objective> {
  static constexpr std::string_view words[] = {"joint", "dense", "adapt"};
};
template <>
struct ChoiceNames<ResumeMode> {
  static constexpr std::string_view words[] = {"auto", "never"};
};
template <>
struct ChoiceNames<DeviceChoice> {
  static constexpr std::string_view words[] = {"auto", "cpu", "cuda"};
};
template <>
struct ChoiceNames<Precision> {
  static constexpr std::string_view words[] = {"bf16", "fp32"};
};
template <>
struct ChoiceNames<CachePrecision> {
  static constexpr std::string_view words[] = {"model", "int8"};
};

// An enum with a word list above.
template <class T>
concept Choice = requires { ChoiceNames<T>::words; };

template <Choice C>
constexpr std::span<const std::string_view> choice_words() {
  return ChoiceNames<C>::words;
}

template <Choice C>
constexpr std::string_view choice_name(C value) {
  return choice_words<C>()[static_cast<size_t>(value)];
}

// The value that `word` names, or nothing.
template <Choice C>
constexpr std::optional<C> find_choice(std::string_view word) {
  const std::span<const std::string_view> words = choice_words<C>();
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i] == word) return static_cast<C>(i);
  }
  return std::nullopt;
}

// The words as strings (for command-line parsers that check membership).
template <Choice C>
std::vector<std::string> choice_strings() {
  const std::span<const std::string_view> words = choice_words<C>();
  return {words.begin(), words.end()};
}

// "a|b|c": the words of a choice as error messages list them.
inline std::string choice_list(std::span<const std::string_view> words) {
  std::string text;
  for (const std::string_view word : words) {
    if (!text.empty()) text += '|';
    text += word;
  }
  return text;
}

// The value that `word` names; otherwise an InputError that names `what` (e.g. "--device") and the words.
template <Choice C>
C parse_choice(std::string_view word, std::string_view what) {
  const std::optional<C> value = find_choice<C>(word);
  require_input(value.has_value(), std::string(what) + ": must be one of " + choice_list(choice_words<C>()) +
                                       ", got '" + std::string(word) + "'");
  return *value;
}

}  // namespace ratplus
