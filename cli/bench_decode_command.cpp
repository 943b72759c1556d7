// `ratplus bench decode (--config FILE | --checkpoint FILE) --context T --gen G --batch B|auto --pattern P
//  [--device D] [--cache model|int8] [--tp N] [--json FILE]` (SPEC §10): decoding throughput. Weights are
// random (the config's init, seeded by train.seed) or a checkpoint's, bf16 on the GPU and f32 on the CPU. Every sequence's cache
// is filled as if T − G tokens had been prefilled (Decoder::prefill_synthetic: the slots such a prompt fills, random
// keys and values), then G steps of the whole batch run and are timed between device synchronisations
// (the first step, which sets up the CUDA graph, is part of the time). Reported: tokens/s, ms per step, the
// cache bytes one sequence holds at T, the weight bytes, the memory held (the GPU's, or the process's
// peak resident set), and the bytes a step must move — the weights once, what a step reads of every
// sequence's cache at the timed steps' mean length (cache_bytes_read_per_step: all of it, except under
// top-k), the logits written — with their fraction of the H200's measured 4.3 TB/s on a GPU. `--batch auto`
// takes the largest batch (up to 2048) whose caches and step buffers fit in 90 % of the free memory. With --tp N under mpirun -n N the model is split over the N ranks (cli/model_group.h); the
// bytes and memory are then those of one rank.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/bench_model.h"
#include "cli/commands.h"
#include "cli/model_group.h"
#include "core/atomic_file.h"
#include "core/config_choices.h"
#include "core/device.h"
#include "core/rng.h"
#include "inference/decoder.h"

namespace ratplus::cli {

namespace {

struct DecodeBenchOptions {
  BenchModelSource source;
  std::string batch = "auto", pattern, json, device = "auto", cache = "model";
  int64_t context = 0, gen = 0;
  ModelGroup group;
};

constexpr int64_t kMaxAutoBatch = 2048;
constexpr double kHbmBytesPerSecond = 4.3e12;  // an H200's measured copy bandwidth (DEVICE.md)

// The batch asked for, or the largest that fits (`fits` sequences of per_sequence bytes; InputError when none
// fits).
int64_t choose_batch(const std::string& text, size_t per_sequence, int64_t fits, size_t available) {
  if (text == "auto") {
    require_input(fits >= 1, fmt::format("--batch auto: not one sequence's {} bytes fit", per_sequence));
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
  cmd->add_option("--device", o->device, "auto (the GPU when there is one), cpu or cuda")->capture_default_str();
  cmd->add_option("--cache", o->cache, "model (the cache in the model's precision) or int8 (8-bit)")
      ->check(CLI::IsMember(choice_strings<CachePrecision>()))
      ->capture_default_str();
  o->group.add_option(*cmd);
  cmd->add_option("--json", o->json, "also write the results to this file as one JSON object");
  return [o] {
    const ModelConfig c = o->source.model_config();
    require_input(o->gen >= 1 && o->context > o->gen,
                  fmt::format("--context {} must exceed --gen {} (at least 1)", o->context, o->gen));
    const Pattern pattern = Pattern::parse(o->pattern);
    const auto precision = parse_choice<CachePrecision>(o->cache, "--cache");
    const Device device = o->group.join(c, parse_choice<DeviceChoice>(o->device, "--device"));
    const size_t free_at_start = available_memory(device);
    Model model(c, device, device == Device::cuda ? DType::bf16 : DType::f32, o->group.communicator());
    o->source.load_weights(model);
    const size_t weight_bytes = static_cast<size_t>(model.table().total_elements()) * dtype_size(model.dtype());
    const size_t logits_bytes = c.vocab_size * dtype_size(model.gradient_dtype());
    const size_t per_sequence = Decoder(model, pattern, 1, o->context, precision).memory_bytes() + logits_bytes;
    const size_t available = available_memory(device);
    const int64_t fits = o->group.smallest(
        static_cast<int64_t>(static_cast<double>(available) * 0.9 / static_cast<double>(per_sequence)));
    const int64_t batch = choose_batch(o->batch, per_sequence, fits, available);
    Decoder decoder(model, pattern, batch, o->context, precision);
    Arena logits_memory;
    logits_memory.reserve("logits", batch, c.vocab_size, model.gradient_dtype());
    logits_memory.allocate(model.device());
    const Tensor logits = logits_memory.get(0);
    decoder.prefill_synthetic(o->context - o->gen, 0x5eed);

    std::vector<int32_t> next(batch);
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    for (int64_t step = 0; step < o->gen; ++step) {
      for (int64_t b = 0; b < batch; ++b) next[b] = static_cast<int32_t>(splitmix64(7 * step + b) % c.vocab_size);
      decoder.step(next, logits);
    }
    synchronize(device);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const size_t held = device == Device::cuda ? free_at_start - available_memory(device) : peak_resident_memory();
    const size_t cache_read = cache_bytes_read_per_step(model, pattern, o->context - o->gen / 2, precision);
    const double step_bytes = static_cast<double>(weight_bytes + batch * (cache_read + logits_bytes));
    const double ms_per_step = 1e3 * seconds / static_cast<double>(o->gen);
    const nlohmann::json j = {
        {"context", o->context},
        {"gen", o->gen},
        {"batch", batch},
        {"pattern", o->pattern},
        {"cache", o->cache},
        {"tp", o->group.tp},
        {"tokens_per_s", static_cast<double>(batch * o->gen) / seconds},
        {"ms_per_step", ms_per_step},
        {"cache_bytes_per_sequence", decoder.cache_bytes_per_sequence()},
        {"weight_bytes", weight_bytes},
        {"peak_memory_bytes", held},
        {"hbm_bytes_per_step", step_bytes},
        {"hbm_fraction", device == Device::cuda ? nlohmann::json(step_bytes / (ms_per_step * 1e-3) / kHbmBytesPerSecond)
                                                : nlohmann::json(nullptr)}};
    if (!o->group.prints()) return;
    fmt::print("decode {} at T {} (the last {} generated), batch {}{} on the {}{}\n", o->pattern, o->context,
               o->gen, batch, precision == CachePrecision::int8 ? ", 8-bit cache" : "", device_name(device),
               o->group.tp > 1 ? fmt::format(", split over {} ranks", o->group.tp) : "");
    fmt::print("throughput        {:.1f} tokens/s, {:.3f} ms per step\n", j["tokens_per_s"].get<double>(), ms_per_step);
    fmt::print("cache             {} bytes per sequence at T; weights {} bytes\n", decoder.cache_bytes_per_sequence(),
               weight_bytes);
    fmt::print("bytes per step    {:.4g}", step_bytes);
    if (device == Device::cuda) fmt::print(", {:.1f}% of 4.3 TB/s", 100 * j["hbm_fraction"].get<double>());
    fmt::print("\nmemory            {:.3f} GiB {}\n", static_cast<double>(held) / (1 << 30),
               device == Device::cuda ? "held on the GPU" : "peak resident");
    if (!o->json.empty()) write_text_file_atomically(o->json, j.dump(2) + "\n");
  };
}

}  // namespace ratplus::cli
