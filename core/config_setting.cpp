// Typed reading of one config value with messages that name the file, line and key (see config_setting.h).
#include "core/config_setting.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace ratplus::config_detail {
namespace {

// Edit distance counting a swap of two neighbouring characters as one edit.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1] ? 1u : 0u)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string format_number(double x) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, x);
  return std::string(buffer, result.ptr);
}

std::string join(std::span<const std::string_view> words, std::string_view separator) {
  std::string text;
  for (const std::string_view word : words) {
    if (!text.empty()) text += separator;
    text += word;
  }
  return text;
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  std::string_view best;
  size_t best_distance = 0;
  for (const std::string_view candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    if (best.empty() || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty() || best_distance > std::max<size_t>(1, best.size() / 3)) return "";
  return "; did you mean '" + std::string(best) + "'?";
}

std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (node.Scalar().empty()) return "an empty string";
  if (node.Tag() == "!") return "the quoted string \"" + node.Scalar() + "\"";
  return "'" + node.Scalar() + "'";
}

std::string override_location(const std::string& text) { return "command line (" + text + ")"; }

std::string Origin::where(const YAML::Mark& mark) const {
  if (override_text) return override_location(*override_text);
  if (mark.is_null()) return source;
  return source + ":" + std::to_string(mark.line + 1);
}

Setting::Setting(std::string key, YAML::Node node, Origin origin, const YAML::Mark& mark)
    : key_(std::move(key)), node_(std::move(node)), origin_(std::move(origin)), where_(origin_.where(mark)) {}

void Setting::fail(const std::string& what) const { throw InputError(where_ + ": " + key_ + ": " + what); }

int64_t Setting::integer_at_least(int64_t min) const {
  const int64_t value = parse<int64_t>("an integer");
  if (value < min) fail("must be >= " + std::to_string(min) + ", got " + std::to_string(value));
  return value;
}

uint64_t Setting::unsigned_integer() const { return parse<uint64_t>("a non-negative integer"); }

double Setting::number() const {
  const double value = parse<double>("a number");
  if (!std::isfinite(value)) fail("must be a finite number, got " + node_.Scalar());
  return value;
}

double Setting::number_above(double bound) const {
  const double value = number();
  if (!(value > bound)) fail("must be > " + format_number(bound) + ", got " + format_number(value));
  return value;
}

double Setting::number_at_least(double bound) const {
  const double value = number();
  if (value < bound) fail("must be >= " + format_number(bound) + ", got " + format_number(value));
  return value;
}

double Setting::number_in(double low, double high, bool high_included) const {
  const double value = number();
  if (value < low || value > high || (!high_included && value == high)) {
    fail("must be in [" + format_number(low) + ", " + format_number(high) + (high_included ? "]" : ")") + ", got " +
         format_number(value));
  }
  return value;
}

bool Setting::boolean() const {
  const std::string text = plain_scalar("true or false");
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  fail("expected true or false, got '" + text + "'");
}

namespace {

// Whether `s` is UTF-8 without control characters: what a config's text can hold and write back unchanged.
bool printable_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (extra < 0 || c < 0x20 || c == 0x7f || (extra == 1 && c < 0xc2) || i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += 1 + extra;
  }
  return true;
}

}  // namespace

std::string Setting::printable(std::string text) const {
  if (!printable_utf8(text)) fail("must be printable UTF-8 text (no control characters)");
  return text;
}

std::string Setting::text() const {
  if (node_.IsNull()) return "";
  if (!node_.IsScalar()) fail("expected a string, got " + describe(node_));
  return printable(node_.Scalar());
}

std::vector<std::string> Setting::paths() const {
  if (node_.IsNull()) return {};
  if (node_.IsScalar()) return {path()};
  if (!node_.IsSequence()) fail("expected a path or a list of paths, got " + describe(node_));
  std::vector<std::string> result;
  for (const Setting& item : items()) result.push_back(item.path());
  return result;
}

std::vector<Setting> Setting::items() const {
  if (!node_.IsSequence()) fail("expected a list, got " + describe(node_));
  std::vector<Setting> result;
  for (size_t i = 0; i < node_.size(); ++i) {
    result.emplace_back(key_ + "[" + std::to_string(i) + "]", node_[i], origin_, node_[i].Mark());
  }
  return result;
}

std::string Setting::path() const {
  if (!node_.IsScalar() || node_.Scalar().empty()) fail("expected a path, got " + describe(node_));
  return printable(node_.Scalar());
}

std::string Setting::plain_scalar(const std::string& expected) const {
  if (!node_.IsScalar() || node_.Tag() == "!") fail("expected " + expected + ", got " + describe(node_));
  return node_.Scalar();
}

}  // namespace ratplus::config_detail
