// One line of a JSON Lines file (data prepare's inputs, eval's questions) parsed as a JSON value, with every
// way the line can fail to be JSON — malformed text, a number beyond a double's range — reported as bad input.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace ratplus {

// InputError "WHERE: not valid JSON (...)" when `line` is not one JSON value.
inline nlohmann::json parse_json_line(const std::string& line, const std::string& where) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers that overflow
    throw InputError(where + ": not valid JSON (" + e.what() + ")");
  }
}

}  // namespace ratplus
