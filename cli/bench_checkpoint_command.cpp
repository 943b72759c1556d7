// `ratplus bench checkpoint --config FILE [section.key=value ...] [--dir DIR] [--json FILE]`: how fast a
// config's training checkpoint is saved and loaded, and how long saving holds training up. A trainer of the
// config (freshly initialised, data of generated tokens, checkpoints into a new directory under DIR that is
// removed at the end) saves its checkpoint twice, as every checkpoint of a run after the first reuses its
// host snapshot. The trainer starts allocating the snapshot when it is built; the benchmark reports how long
// it then still waits for it, the time a checkpoint right at the start of a run would wait. For each save:
// the stall (the gather into the snapshot, the only part training waits for) and the background write (from
// its start until the file is complete, synced and renamed). Then rank 0 loads the file as a resume does,
// into host memory, after asking the kernel to drop the file's pages from its cache (posix_fadvise), so the
// load reads the disk. Under mpirun every rank takes part in the saves; rank 0 alone loads, prints and writes
// the JSON.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/distributed_checkpoint.h"
#include "cli/bench_model.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/temp_dir.h"
#include "data/synthetic.h"
#include "parallel/communicator.h"
#include "trainer/trainer.h"

namespace ratplus::cli {
namespace {

struct CheckpointBenchOptions {
  std::string config;
  std::vector<std::string> overrides;
  std::string dir;
  std::string json;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct SaveTiming {
  double stall = 0, write = 0;
};

SaveTiming timed_save(Trainer& trainer, std::string& path) {
  path = trainer.save_checkpoint();
  const auto written = Clock::now();
  trainer.finish_checkpoint();
  return {trainer.last_checkpoint_stall(), seconds_since(written)};
}

// Asks the kernel to forget the file's cached pages (they are clean: the file was synced); whether it agreed.
bool drop_from_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool dropped = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  ::close(fd);
  return dropped;
}

nlohmann::json run_checkpoint_benchmark(const CheckpointBenchOptions& o) {
  const TempDir dir("ratplus_bench_checkpoint", o.dir.empty() ? std::filesystem::temp_directory_path()
                                                               : std::filesystem::path(o.dir));
  ExperimentConfig c = load_experiment_config(o.config, o.overrides);
  const std::string shard = dir.file("tokens.bin");
  write_llmc_shard(shard, synthesize_tokens(c.train.global_batch * c.data.seq_len + 1, c.model.vocab_size, 1),
                   c.model.vocab_size <= 65536 ? 1 : 7);
  isolate_benchmark_run(c, shard, dir.file("checkpoints"));
  Trainer trainer(c);
  const auto built = Clock::now();
  trainer.finish_checkpoint();  // the snapshot's allocation
  const double allocation_wait = seconds_since(built);
  std::string path;
  const SaveTiming first = timed_save(trainer, path), second = timed_save(trainer, path);
  if (world().rank() != 0) return {};

  const uint64_t bytes = std::filesystem::file_size(path);
  const bool dropped = drop_from_page_cache(path);
  const ParameterTable table(c.model);
  std::vector<std::vector<float>> values(kTensorGroups, std::vector<float>(table.total_elements()));
  std::vector<HeldValues> held;
  for (std::vector<float>& v : values)
    held.push_back({{0, table.total_elements()},
                    Tensor{v.data(), 1, table.total_elements(), table.total_elements(), DType::f32, Device::cpu}});
  const auto load_start = Clock::now();
  load_distributed_checkpoint(path, c.model, table, held);
  const double load = seconds_since(load_start);
  return {{"config", o.config},
          {"overrides", o.overrides},
          {"device", device_name(trainer.model().device())},
          {"ranks", world().size()},
          {"parameters", c.model.parameter_count()},
          {"checkpoint_bytes", bytes},
          {"stall_seconds", second.stall},
          {"stall_seconds_first", first.stall},
          {"snapshot_allocation_wait_seconds", allocation_wait},
          {"save_seconds", second.write},
          {"save_seconds_first", first.write},
          {"save_bytes_per_second", static_cast<double>(bytes) / second.write},
          {"load_seconds", load},
          {"load_bytes_per_second", static_cast<double>(bytes) / load},
          {"load_page_cache_dropped", dropped},
          {"dir", dir.path()}};
}

}  // namespace

Action add_bench_checkpoint_command(CLI::App& bench) {
  auto* cmd = bench.add_subcommand(
      "checkpoint", "time saving (training stall, background write) and loading a config's training checkpoint");
  auto o = std::make_shared<CheckpointBenchOptions>();
  cmd->add_option("--config", o->config, "experiment YAML file")->required();
  cmd->add_option("overrides", o->overrides, "section.key=value overrides");
  cmd->add_option("--dir", o->dir,
                  "directory on the disk to measure (a new directory is made in it and removed at the end; "
                  "default: the system's temporary directory)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--json", o->json, "also write the results to this file as one JSON object");
  return [o] {
    const nlohmann::json result = run_checkpoint_benchmark(*o);
    if (world().rank() != 0) return;
    const double gb = result["checkpoint_bytes"].get<double>() / 1e9;
    fmt::print("checkpoint        {:.3f} GB ({} parameters, {})\n", gb, result["parameters"].get<int64_t>(),
               result["device"].get<std::string>());
    fmt::print("training stall    {:.3f} s (first checkpoint: {:.3f} s)\n", result["stall_seconds"].get<double>(),
               result["stall_seconds_first"].get<double>());
    fmt::print("snapshot          allocated in the background from the start; {:.3f} s of it left once the "
               "trainer was built\n", result["snapshot_allocation_wait_seconds"].get<double>());
    fmt::print("save              {:.3f} s in the background, {:.2f} GB/s\n", result["save_seconds"].get<double>(),
               result["save_bytes_per_second"].get<double>() / 1e9);
    fmt::print("load              {:.3f} s, {:.2f} GB/s{}\n", result["load_seconds"].get<double>(),
               result["load_bytes_per_second"].get<double>() / 1e9,
               result["load_page_cache_dropped"].get<bool>() ? "" : " (the page cache could not be dropped)");
    fmt::print("{}\n", result.dump());
    if (!o->json.empty()) write_text_file_atomically(o->json, result.dump(2) + "\n");
  };
}

}  // namespace ratplus::cli
