// Writing a small text file so that readers see either the old file or the complete new one: the text
// goes to PATH.tmp, is fsync'ed, and is renamed over PATH. Failures are InputErrors naming the path.
#pragma once

#include <string>

namespace ratplus {

void write_text_file_atomically(const std::string& path, const std::string& text);

}  // namespace ratplus
