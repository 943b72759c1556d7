// One value of a config's YAML tree with its full key and where it was written, the typed readers that
// fail with an InputError naming both, and the text helpers that config messages share. Used by the
// config reader and the schema (core/config_schema.h); not part of the config API.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_choices.h"

namespace ratplus::config_detail {

// Shortest text that parses back to exactly `x`.
std::string format_number(double x);

// The whole of `text` as a number of type T (an optional leading '+' allowed), or nothing.
template <class T>
std::optional<T> parse_number(std::string_view text) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-' && text[1] != '+') text.remove_prefix(1);
  T value{};
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  if (result.ec != std::errc() || result.ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string join(std::span<const std::string_view> words, std::string_view separator);

// "; did you mean 'x'?" for the closest candidate within a few edits of `word`, else "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);

// How a node looks, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node);

// "command line (section.key=value)": where an override is named in messages.
std::string override_location(const std::string& text);

// Where the value of one key came from: a line of the source text, or the command-line override that set it.
struct Origin {
  std::string source;
  std::optional<std::string> override_text;

  std::string where(const YAML::Mark& mark) const;
};

// One value of the tree with its full key ("model.d_model") and where it was written; the typed readers
// fail with an InputError naming both.
class Setting {
 public:
  Setting(std::string key, YAML::Node node, Origin origin, const YAML::Mark& mark);

  const std::string& key() const { return key_; }
  const YAML::Node& node() const { return node_; }
  const std::string& where() const { return where_; }

  [[noreturn]] void fail(const std::string& what) const;

  int64_t integer_at_least(int64_t min) const;
  uint64_t unsigned_integer() const;
  double number() const;
  double number_above(double bound) const;
  double number_at_least(double bound) const;
  // A number in [low, high] or, when `high_included` is false, in [low, high).
  double number_in(double low, double high, bool high_included) const;
  bool boolean() const;
  // Any scalar as text; an empty value reads as "".
  std::string text() const;
  // One path or a list of them; an empty value is an empty list.
  std::vector<std::string> paths() const;
  // The elements of a list, each named key[i] and located at its own line.
  std::vector<Setting> items() const;

  // One of the words of a choice (with a "did you mean" for a near miss).
  template <Choice C>
  C choice() const {
    const std::string word = text();
    if (const std::optional<C> value = find_choice<C>(word)) return *value;
    const std::span<const std::string_view> words = choice_words<C>();
    fail("must be one of " + choice_list(words) + ", got '" + word + "'" + did_you_mean(word, words));
  }

 private:
  std::string path() const;
  // The text of an unquoted scalar (numbers and booleans are never quoted); anything else fails.
  std::string plain_scalar(const std::string& expected) const;
  // `text`, or a failure unless it is UTF-8 without control characters.
  std::string printable(std::string text) const;

  template <class T>
  T parse(const std::string& expected) const {
    const std::string text = plain_scalar(expected);
    const std::optional<T> value = parse_number<T>(text);
    if (!value) fail("expected " + expected + ", got '" + text + "'");
    return *value;
  }

  std::string key_;
  YAML::Node node_;
  Origin origin_;
  std::string where_;
};

}  // namespace ratplus::config_detail
