// Fuzz target: the experiment config reader with overrides. The input is YAML text, then after a NUL byte
// one `section.key=value` override per line.
#include <string>
#include <vector>

#include "core/config.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  std::vector<std::string> overrides;
  if (nul != std::string::npos) {
    for (size_t start = nul + 1; start <= input.size();) {
      const size_t end = std::min(input.find('\n', start), input.size());
      overrides.push_back(input.substr(start, end - start));
      start = end + 1;
    }
  }
  ratplus::fuzz::refusals_allowed([&] {
    const ratplus::ExperimentConfig config = ratplus::parse_experiment_config(input.substr(0, nul), "fuzz.yaml", overrides);
    // What was accepted writes and reads back the same.
    const ratplus::ExperimentConfig again =
        ratplus::parse_experiment_config(ratplus::experiment_config_to_yaml(config), "again.yaml");
    if (!ratplus::config_differences(config, again).empty()) __builtin_trap();
  });
  return 0;
}
