// Fuzz target: the attention pattern parser (SPEC §10 grammar) and the check against a model's shape.
#include <string>

#include "fuzz_input.h"
#include "model/pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ratplus::fuzz::refusals_allowed([&] {
    const ratplus::Pattern pattern = ratplus::Pattern::parse(text);
    pattern.check_fits(4, 8);
    for (int64_t layer = 0; layer < 4; ++layer) pattern.head_keys(layer, 8);
  });
  return 0;
}
