// `ratplus bench train --config FILE [section.key=value ...] [--steps N] [--warmup N] [--json FILE]`: the
// training throughput of a config. The batches are random tokens of the config's vocabulary, written as a
// temporary llm.c shard, so any config can be measured without its data; checkpoints, validation, the
// JSONL log and the metrics endpoint are off. After `warmup` untimed steps, each of `steps` calls of
// Trainer::step() (every pass of the objective on one batch) is timed with the host clock between GPU
// synchronisations. Reported: parameters, tokens per step, median and fastest step, tokens per second,
// model FLOP/s and (on the GPU) MFU as SPEC §8 defines them, and the memory the run held. Under mpirun every
// rank runs the benchmark (data and tensor parallel as configured); MFU is per GPU (model FLOP/s over the
// peak of all ranks' GPUs), memory is rank 0's, and rank 0 alone prints and writes the JSON.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "cli/bench_model.h"
#include "cli/commands.h"
#include "core/temp_dir.h"
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/device.h"
#include "core/rng.h"
#include "data/synthetic.h"
#include "model/flops.h"
#include "parallel/communicator.h"
#include "trainer/trainer.h"

namespace ratplus::cli {

namespace {

struct TrainBenchOptions {
  std::string config;
  std::vector<std::string> overrides;
  int64_t steps = 10;
  int64_t warmup = 2;
  std::string json;
};

// Writes an llm.c shard of n uniformly random token ids below vocab (uint16 tokens when they fit).
void write_random_shard(const std::string& path, int64_t n, int64_t vocab) {
  std::vector<uint32_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = static_cast<uint32_t>(splitmix64(i) % static_cast<uint64_t>(vocab));
  write_llmc_shard(path, tokens, vocab <= 65536 ? 1 : 7);
}

// The config with its overrides, reading a shard of random tokens in `dir` that holds exactly the batches
// the benchmark takes, and with every side output of training (checkpoints, resume, validation, JSONL log,
// metrics endpoint) off.
ExperimentConfig benchmark_config(const TrainBenchOptions& o, const TempDir& dir) {
  ExperimentConfig c = load_experiment_config(o.config, o.overrides);
  const std::string shard = dir.file("random_tokens.bin");
  const int64_t windows = (o.warmup + o.steps) * c.train.global_batch;
  write_random_shard(shard, windows * c.data.seq_len + 1, c.model.vocab_size);
  isolate_benchmark_run(c, shard, dir.file("checkpoints"));
  return c;
}

#ifdef RATPLUS_HAVE_CUDA
void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(fmt::format("{}: {}", what, cudaGetErrorString(err)));
}
#endif

double timed_step(Trainer& trainer) {
  const Device device = trainer.model().device();
  synchronize(device);
  const auto start = std::chrono::steady_clock::now();
  trainer.step();
  synchronize(device);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct MemoryUse {
  int64_t bytes;
  std::string measure;  // what `bytes` counts
};

MemoryUse memory_use([[maybe_unused]] Device device) {
#ifdef RATPLUS_HAVE_CUDA
  if (device == Device::cuda) {
    size_t free = 0, total = 0;
    check_cuda(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    return {static_cast<int64_t>(total - free),
            "GPU memory in use after the steps (cudaMemGetInfo total - free: includes the CUDA context and any "
            "other process on the GPU)"};
  }
#endif
  return {static_cast<int64_t>(peak_resident_memory()), "peak resident memory of the process (VmHWM)"};
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

struct TrainBenchResult {
  ExperimentConfig config;
  Device device = Device::cpu;
  DType activations = DType::f32;
  std::vector<std::string> passes;
  int64_t parameters = 0;
  int ranks = 1;
  int64_t warmup = 0;
  double train_flops_per_token = 0;  // SPEC §8: 3 × forward, summed over the passes of a step
  std::vector<double> step_seconds;
  MemoryUse memory;

  bool on_gpu() const { return device == Device::cuda; }
  int64_t tokens_per_step() const { return config.train.global_batch * config.data.seq_len; }
  double median_seconds() const { return median(step_seconds); }
  double min_seconds() const { return *std::min_element(step_seconds.begin(), step_seconds.end()); }
  double tokens_per_second() const { return static_cast<double>(tokens_per_step()) / median_seconds(); }
  double flops_per_second() const { return train_flops_per_token * tokens_per_second(); }
  double mfu() const { return flops_per_second() / (kHopperPeakFlops * ranks); }
};

TrainBenchResult run_train_benchmark(const TrainBenchOptions& o) {
  const TempDir dir("ratplus_bench");
  TrainBenchResult r;
  r.config = benchmark_config(o, dir);
  r.warmup = o.warmup;
  Trainer trainer(r.config);
  r.device = trainer.model().device();
  r.activations = trainer.model().dtype();
  r.parameters = r.config.model.parameter_count();
  r.ranks = world().size();
  for (const Pass& p : trainer.passes()) {
    r.passes.push_back(p.name);
    r.train_flops_per_token += 3 * forward_flops_per_token(r.config.model, p.pattern, r.config.data.seq_len);
  }
  spdlog::info("bench train: {} warm-up and {} timed steps on {}", o.warmup, o.steps, device_name(r.device));
  for (int64_t i = 0; i < o.warmup; ++i) trainer.step();
  for (int64_t i = 0; i < o.steps; ++i) r.step_seconds.push_back(timed_step(trainer));
  r.memory = memory_use(r.device);
  return r;
}

constexpr const char* kPeakName = "H100/H200 SXM dense bf16";

nlohmann::json to_json(const TrainBenchResult& r, const TrainBenchOptions& o) {
  const ExperimentConfig& c = r.config;
  nlohmann::json j = {{"config", o.config},
                      {"overrides", o.overrides},
                      {"device", device_name(r.device)},
                      {"activations", dtype_name(r.activations)},
                      {"objective", std::string(choice_name(c.train.objective))},
                      {"passes", r.passes},
                      {"parameters", r.parameters},
                      {"ranks", r.ranks},
                      {"tensor_parallel", c.parallel.tp},
                      {"zero1", c.parallel.zero1},
                      {"global_batch", c.train.global_batch},
                      {"micro_batch", c.train.micro_batch},
                      {"seq_len", c.data.seq_len},
                      {"tokens_per_step", r.tokens_per_step()},
                      {"warmup_steps", r.warmup},
                      {"steps", r.step_seconds.size()},
                      {"step_seconds", r.median_seconds()},
                      {"step_seconds_min", r.min_seconds()},
                      {"step_seconds_all", r.step_seconds},
                      {"tokens_per_second", r.tokens_per_second()},
                      {"train_flops_per_token", r.train_flops_per_token},
                      {"model_flops_per_second", r.flops_per_second()},
                      {"memory_bytes", r.memory.bytes},
                      {"memory_measure", r.memory.measure}};
  if (r.on_gpu()) {
    j["mfu"] = r.mfu();
    j["mfu_peak_flops"] = kHopperPeakFlops;
    j["mfu_peak"] = kPeakName;
  }
  return j;
}

// x with an SI prefix: "2.32 G" + unit.
std::string si(double x, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  for (; i < 5 && x >= 1000; ++i) x /= 1000;
  return fmt::format("{:.3g} {}{}", x, prefixes[i], unit);
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string s;
  for (const std::string& p : parts) s += (s.empty() ? "" : separator) + p;
  return s;
}

void print_result(const TrainBenchResult& r, const TrainBenchOptions& o) {
  const ExperimentConfig& c = r.config;
  fmt::print("config            {} ({} objective: {} per step; {}, {} activations)\n", o.config,
             choice_name(c.train.objective), join(r.passes, " + "), device_name(r.device), dtype_name(r.activations));
  fmt::print("parameters        {}\n", r.parameters);
  if (r.ranks > 1)
    fmt::print("ranks             {} (tensor parallel {}, data parallel {}{})\n", r.ranks, c.parallel.tp,
               r.ranks / c.parallel.tp, c.parallel.zero1 && r.ranks > c.parallel.tp ? ", ZeRO-1" : "");
  fmt::print("tokens per step   {} ({} sequences x {} tokens, micro-batch {})\n", r.tokens_per_step(),
             c.train.global_batch, c.data.seq_len, c.train.micro_batch);
  fmt::print("step time         median {:.4f} s, min {:.4f} s ({} timed steps after {} warm-up)\n",
             r.median_seconds(), r.min_seconds(), r.step_seconds.size(), r.warmup);
  fmt::print("throughput        {:.0f} tokens/s\n", r.tokens_per_second());
  fmt::print("model FLOP/s      {} ({} per token through every pass, SPEC §8)\n", si(r.flops_per_second(), "FLOP/s"),
             si(r.train_flops_per_token, "FLOP"));
  if (r.on_gpu())
    fmt::print("MFU               {:.2f}% of {:.0f} TFLOP/s ({}) per GPU\n", 100 * r.mfu(), kHopperPeakFlops / 1e12,
               kPeakName);
  fmt::print("memory            {:.3f} GiB: {}\n", static_cast<double>(r.memory.bytes) / (1 << 30), r.memory.measure);
}

}  // namespace

Action add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand(
      "bench", "measure performance (train: training throughput and MFU; decode: decoding throughput; prefill: "
               "prefill time; checkpoint: checkpoint save and load speed, training stall)");
  bench->require_subcommand(1);
  auto* train = bench->add_subcommand("train", "time training steps of a config on random tokens");
  auto o = std::make_shared<TrainBenchOptions>();
  train->add_option("--config", o->config, "experiment YAML file")->required();
  train->add_option("overrides", o->overrides, "section.key=value overrides");
  train->add_option("--steps", o->steps, "timed steps")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  train->add_option("--warmup", o->warmup, "untimed steps before them")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  train->add_option("--json", o->json, "also write the results to this file as one JSON object");
  const Action decode = add_bench_decode_command(*bench), prefill = add_bench_prefill_command(*bench),
               checkpoint = add_bench_checkpoint_command(*bench);
  return [o, bench, decode, prefill, checkpoint] {
    if (bench->got_subcommand("decode")) return decode();
    if (bench->got_subcommand("prefill")) return prefill();
    if (bench->got_subcommand("checkpoint")) return checkpoint();
    const TrainBenchResult result = run_train_benchmark(*o);
    if (world().rank() != 0) return;
    print_result(result, *o);
    if (!o->json.empty()) write_text_file_atomically(o->json, to_json(result, *o).dump(2) + "\n");
  };
}

}  // namespace ratplus::cli
