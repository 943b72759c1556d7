// Fuzz target: the checkpoint loader (SPEC §7): the /model config attribute, then every parameter, as
// `ratplus eval` and `generate` read them.
#include <vector>

#include "checkpoint/model_checkpoint.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ratplus::fuzz::TempFile file(data, size);
  ratplus::fuzz::refusals_allowed([&] {
    const ratplus::ModelConfig config = ratplus::read_checkpoint_model_config(file.path());
    const ratplus::ParameterTable table(config);
    if (table.total_elements() > (int64_t{1} << 24)) return;  // keeps runs fast
    std::vector<float> params(static_cast<size_t>(table.total_elements()));
    ratplus::load_model_parameters(file.path(), config, params.data());
  });
  return 0;
}
