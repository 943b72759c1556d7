// Fuzz target: the multiple-choice question reader of `eval --task choice` (SPEC §10), every line of a JSONL
// file as token questions (text questions without a tokenizer are among the documented refusals).
#include "fuzz_input.h"
#include "inference/choice_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ratplus::fuzz::TempFile file(data, size);
  ratplus::fuzz::refusals_allowed([&] { ratplus::read_choice_questions(file.path(), nullptr, 256); });
  return 0;
}
