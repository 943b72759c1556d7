// `ratplus bench prefill (--config FILE | --checkpoint FILE) --context T --pattern P [--operator] [--device D]
//  [--repeats N] [--json FILE]` (SPEC §10): the time of one prefill of T tokens — a forward pass of the whole
// model that keeps no logits (the decoder's prefill) — or, with --operator, of one layer's temporal-mixing
// core: the recurrence scan, RoPE of queries and keys, and attention under the pattern (the projections
// apart). Random weights (the config's init) or a checkpoint's; random tokens or activations; bf16 on the GPU,
// f32 on the CPU. After one untimed run, the median of `repeats` runs between device synchronisations.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/bench_model.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/config_choices.h"
#include "core/device.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/recurrence.h"
#include "kernels/rope.h"
#include "model/model.h"

namespace ratplus::cli {

namespace {

struct PrefillBenchOptions {
  BenchModelSource source;
  std::string pattern, json, device = "auto";
  int64_t context = 0, repeats = 3;
  bool op = false;
};

// The median wall time of `repeats` calls of `run`, after one untimed call.
double median_seconds(Device device, int64_t repeats, const std::function<void()>& run) {
  run();
  std::vector<double> times;
  for (int64_t i = 0; i < repeats; ++i) {
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    run();
    synchronize(device);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// One layer's temporal-mixing core over T rows of random activations.
double time_operator(const ModelConfig& c, const Pattern& pattern, int64_t T, Device device, DType dtype,
                     int64_t repeats) {
  const int64_t d = c.d_model;
  Arena memory;
  const int q = memory.reserve("q", T, d, dtype), k = memory.reserve("k", T, d, dtype),
            v = memory.reserve("v", T, d, dtype), g = memory.reserve("g", T, d, dtype),
            k_rec = memory.reserve("k_rec", T, d, dtype), v_rec = memory.reserve("v_rec", T, d, dtype),
            q_rot = memory.reserve("q_rot", T, d, dtype), k_rot = memory.reserve("k_rot", T, d, dtype),
            out = memory.reserve("out", T, d, dtype), lse = memory.reserve("lse", T, c.n_heads, DType::f32);
  memory.allocate(device);
  std::vector<float> random(static_cast<size_t>(T * d));
  for (const int handle : {q, k, v, g}) {
    for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<float>(normal(handle + 1, i));
    from_host_floats(memory.get(handle), random);
  }
  const std::vector<KeySet> keys = pattern.head_keys(0, c.n_heads);
  const std::vector<BlockTopK> blocks = pattern.head_blocks(0, c.n_heads);
  return median_seconds(device, repeats, [&] {
    Tensor keys_in = memory.get(k), values = memory.get(v);
    if (c.recurrence) {
      recurrence_forward(memory.get(k_rec), memory.get(v_rec), keys_in, values, memory.get(g), 1);
      keys_in = memory.get(k_rec);
      values = memory.get(v_rec);
    }
    rope(memory.get(q_rot), memory.get(q), T, c.n_heads, c.rope_base, 0, false);
    rope(memory.get(k_rot), keys_in, T, c.n_heads, c.rope_base, 0, false);
    attention_forward({.q = memory.get(q_rot), .batch = 1, .q_len = T, .k = memory.get(k_rot), .v = values,
                       .k_len = T, .head_keys = keys, .head_blocks = blocks, .out = memory.get(out), .lse = memory.get(lse)});
  });
}

}  // namespace

Action add_bench_prefill_command(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("prefill", "time a prefill of T tokens (the whole model, or --operator)");
  auto o = std::make_shared<PrefillBenchOptions>();
  o->source.add_options(*cmd);
  cmd->add_option("--context", o->context, "tokens of the prefill (T)")->required();
  cmd->add_option("--pattern", o->pattern, "attention pattern")->required();
  cmd->add_flag("--operator", o->op, "one layer's temporal-mixing core (scan, RoPE, attention) instead");
  cmd->add_option("--device", o->device, "auto (the GPU when there is one), cpu or cuda")
      ->check(CLI::IsMember(choice_strings<DeviceChoice>()))
      ->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "timed runs (the median is reported)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  cmd->add_option("--json", o->json, "also write the results to this file as one JSON object");
  return [o] {
    const ModelConfig c = o->source.model_config();
    require_input(o->context >= 1 && o->context <= 262144,
                  fmt::format("--context must be 1 to 262144 tokens, got {}", o->context));
    const Pattern pattern = Pattern::parse(o->pattern);
    pattern.check_fits(c.n_layers, c.n_heads);
    const Device device = select_device(parse_choice<DeviceChoice>(o->device, "--device"));
    const DType dtype = device == Device::cuda ? DType::bf16 : DType::f32;
    const int64_t T = o->context;
    double seconds = 0;
    if (o->op) {
      seconds = time_operator(c, pattern, T, device, dtype, o->repeats);
    } else {
      Model::memory_plan(c, dtype, 1, T, false)
          .check_fits(device, fmt::format("memory plan on {}", device_name(device)), "lower --context");
      Model model(c, device, dtype);
      o->source.load_weights(model);
      std::vector<int32_t> tokens(T);
      for (int64_t i = 0; i < T; ++i) tokens[i] = static_cast<int32_t>(splitmix64(i) % c.vocab_size);
      seconds = median_seconds(device, o->repeats,
                               [&] { model.forward({tokens.data(), 1, T, pattern}, std::monostate{}); });
    }
    const nlohmann::json j = {{"context", T},
                              {"pattern", o->pattern},
                              {"scope", o->op ? "operator" : "model"},
                              {"device", device_name(device)},
                              {"seconds", seconds},
                              {"tokens_per_s", static_cast<double>(T) / seconds}};
    fmt::print("prefill of {} tokens under {} ({}, {}): {:.4f} s, {:.0f} tokens/s\n", T, o->pattern,
               o->op ? "one layer's temporal-mixing core" : "the whole model", device_name(device), seconds,
               static_cast<double>(T) / seconds);
    if (!o->json.empty()) write_text_file_atomically(o->json, j.dump(2) + "\n");
  };
}

}  // namespace ratplus::cli
