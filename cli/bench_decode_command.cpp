// `ratplus bench decode (--config FILE | --checkpoint FILE) --context T --gen G --batch B|auto --pattern P
//  [--json FILE]` (SPEC §10): decoding throughput. Weights are random (the config's init, seeded by
// train.seed) or a checkpoint's; every sequence of the batch is prefilled with T − G random tokens, then G
// steps of the whole batch are timed with the host clock. Reported: tokens/s, ms per step, the cache bytes
// one sequence holds at T, the weight bytes, the process's peak memory, and the bytes a step must read
// (weights once, every sequence's cache) with their fraction of 4.3 TB/s on a GPU. `--batch auto` takes the
// largest batch (up to 2048) whose caches fit the memory available. Decoding runs on the CPU in this version.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/bench_model.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/device.h"
#include "core/rng.h"
#include "inference/decoder.h"

namespace ratplus::cli {

namespace {

struct DecodeBenchOptions {
  BenchModelSource source;
  std::string batch = "auto", pattern, json;
  int64_t context = 0, gen = 0;
};

constexpr int64_t kMaxAutoBatch = 2048;

// The batch asked for, or the largest whose caches fit beside the weights (InputError when none fits).
int64_t choose_batch(const std::string& text, size_t per_sequence, size_t fixed) {
  const size_t available = available_memory(Device::cpu);
  const int64_t fits = available > fixed ? static_cast<int64_t>((available - fixed) * 8 / 10 / per_sequence) : 0;
  if (text == "auto") {
    require_input(fits >= 1, fmt::format("--batch auto: not one sequence's cache of {} bytes fits", per_sequence));
    return std::min(fits, kMaxAutoBatch);
  }
  int64_t batch = 0;
  try {
    size_t used = 0;
    batch = std::stoll(text, &used);
    if (used != text.size()) batch = 0;
  } catch (const std::exception&) {
    batch = 0;
  }
  require_input(batch >= 1, fmt::format("--batch must be a positive number or auto, got '{}'", text));
  require_input(batch <= fits, fmt::format("--batch {}: the caches need {:.2f} GiB, {:.2f} GiB are available", batch,
                                           static_cast<double>(batch * per_sequence) / (1 << 30),
                                           static_cast<double>(available) / (1 << 30)));
  return batch;
}

}  // namespace

Action add_bench_decode_command(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("decode", "time decoding steps of a batch after a prefill of T - G tokens");
  auto o = std::make_shared<DecodeBenchOptions>();
  o->source.add_options(*cmd);
  cmd->add_option("--context", o->context, "positions per sequence at the end (T)")->required();
  cmd->add_option("--gen", o->gen, "timed decoding steps (G)")->required();
  cmd->add_option("--batch", o->batch, "sequences decoded together, or auto")->capture_default_str();
  cmd->add_option("--pattern", o->pattern, "attention pattern")->required();
  cmd->add_option("--json", o->json, "also write the results to this file as one JSON object");
  return [o] {
    const ModelConfig c = o->source.model_config();
    require_input(o->gen >= 1 && o->context > o->gen,
                  fmt::format("--context {} must exceed --gen {} (at least 1)", o->context, o->gen));
    const Pattern pattern = Pattern::parse(o->pattern);
    Model model(c, Device::cpu, DType::f32);
    o->source.load_weights(model);
    const size_t weight_bytes = static_cast<size_t>(model.table().total_elements()) * dtype_size(model.dtype());
    const size_t per_sequence = cache_bytes_per_sequence(model, pattern, o->context);
    const int64_t batch = choose_batch(o->batch, per_sequence, weight_bytes);
    Decoder decoder(model, pattern, batch, o->context);

    const int64_t prompt = o->context - o->gen;
    Arena logits_memory;
    logits_memory.reserve("logits", batch, c.vocab_size, model.gradient_dtype());
    logits_memory.allocate(model.device());
    const Tensor logits = logits_memory.get(0);
    std::vector<int32_t> tokens(prompt);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < prompt; ++i) tokens[i] = static_cast<int32_t>(splitmix64(b * prompt + i) % c.vocab_size);
      decoder.prefill(b, tokens, logits.rows_slice(b, 1));
    }
    std::vector<int32_t> next(batch);
    const auto start = std::chrono::steady_clock::now();
    for (int64_t step = 0; step < o->gen; ++step) {
      for (int64_t b = 0; b < batch; ++b) next[b] = static_cast<int32_t>(splitmix64(7 * step + b) % c.vocab_size);
      decoder.step(next, logits);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double step_bytes = static_cast<double>(weight_bytes + batch * per_sequence);
    const nlohmann::json j = {{"context", o->context},
                              {"gen", o->gen},
                              {"batch", batch},
                              {"pattern", o->pattern},
                              {"tokens_per_s", static_cast<double>(batch * o->gen) / seconds},
                              {"ms_per_step", 1e3 * seconds / static_cast<double>(o->gen)},
                              {"cache_bytes_per_sequence", per_sequence},
                              {"weight_bytes", weight_bytes},
                              {"peak_memory_bytes", peak_resident_memory()},
                              {"hbm_bytes_per_step", step_bytes},
                              {"hbm_fraction", nullptr}};
    fmt::print("decode {} at T {} (the last {} generated), batch {} on the CPU\n", o->pattern, o->context, o->gen,
               batch);
    fmt::print("throughput        {:.1f} tokens/s, {:.3f} ms per step\n", j["tokens_per_s"].get<double>(),
               j["ms_per_step"].get<double>());
    fmt::print("cache             {} bytes per sequence; weights {} bytes; {:.0f} bytes read per step\n",
               per_sequence, weight_bytes, step_bytes);
    fmt::print("memory            {:.3f} GiB peak resident\n", static_cast<double>(peak_resident_memory()) / (1 << 30));
    if (!o->json.empty()) write_text_file_atomically(o->json, j.dump(2) + "\n");
  };
}

}  // namespace ratplus::cli
