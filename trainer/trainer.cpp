// The training loop (see trainer.h).
#include "trainer/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "checkpoint/background_writer.h"
#include "checkpoint/distributed_checkpoint.h"
#include "checkpoint/model_checkpoint.h"
#include "checkpoint/training_checkpoint.h"
#include "core/atomic_file.h"
#include "core/device.h"
#include "kernels/optimizer.h"
#include "model/flops.h"
#include "model/window_loss.h"
#include "parallel/gradient_reducer.h"
#include "trainer/schedule.h"

namespace ratplus {

namespace {

std::atomic<bool> g_stop_requested{false};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string clock_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

std::string count_text(double x) {
  if (x >= 1e6) return fmt::format("{:.2f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.1f}k", x / 1e3);
  return fmt::format("{:.0f}", x);
}

Pattern config_pattern(const std::string& text, const char* key, const ModelConfig& model) {
  try {
    Pattern p = Pattern::parse(text);
    p.check_fits(model.n_layers, model.n_heads);
    require_input(!p.has_top_k(),
                  fmt::format("pattern '{}': top-k patterns are for inference (eval, generate), not training", text));
    return p;
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", key, e.what()));
  }
}

std::vector<Pass> objective_passes(const ExperimentConfig& c) {
  // train.pattern matters to the adapt objective only, but a typo in it is reported whatever the objective.
  const Pattern pattern = config_pattern(c.train.pattern, "train.pattern", c.model);
  if (c.train.objective == Objective::joint)
    return {{"sparse", Pattern::dilated(c.train.arl_dilation)}, {"dense", Pattern::dense()}};
  if (c.train.objective == Objective::dense) return {{"dense", Pattern::dense()}};
  return {{"adapt", pattern}};
}

std::shared_ptr<const TokenStream> open_data(const std::vector<std::string>& paths, const char* key,
                                             const ExperimentConfig& c) {
  require_input(!paths.empty(), fmt::format("{}: {}: no token files given", c.source, key));
  return std::make_shared<const TokenStream>(paths, c.data.format, c.model.vocab_size);
}

// data.val when validation is on (train.val_every > 0), holding train.val_batches windows at least.
std::shared_ptr<const TokenStream> open_validation_data(const ExperimentConfig& c) {
  if (c.train.val_every == 0) return nullptr;
  auto data = open_data(c.data.val, "data.val", c);
  const int64_t available = data->num_windows(c.data.seq_len);
  require_input(c.train.val_batches <= available,
                fmt::format("train.val_batches: {} windows asked for, data.val holds {} of {} tokens",
                            c.train.val_batches, available, c.data.seq_len));
  return data;
}

// World rank 0 writes the checkpoints: it creates checkpoint.dir, checks that it can write there and locks it
// against other runs. Every rank learns whether that worked, so a refusal ends them all (InputError).
std::unique_ptr<DirLock> lock_checkpoint_dir(const ExperimentConfig& c, Communicator& world) {
  std::unique_ptr<DirLock> lock;
  std::string problem;
  if (world.rank() == 0) {
    try {
      lock = std::make_unique<DirLock>(c.checkpoint.dir);
      // Room for one more checkpoint, found now rather than at the first write after hours of training.
      const uint64_t needed = checkpoint_file_bytes(c.model, kTensorGroups);
      const std::optional<uint64_t> free = free_bytes(c.checkpoint.dir);
      require_input(!free || *free >= needed,
                    fmt::format("'{}': a checkpoint needs about {:.1f} MB and its file system has {:.1f} MB free",
                                c.checkpoint.dir, needed / 1e6, free.value_or(0) / 1e6));
    } catch (const InputError& e) {
      problem = e.what();
    }
  }
  double refused = problem.empty() ? 0 : 1;
  world.allreduce_sum(std::span<double>(&refused, 1));
  if (refused == 0) return lock;
  throw InputError(world.rank() == 0 ? fmt::format("checkpoint.dir: {}", problem)
                                     : fmt::format("checkpoint.dir: rank 0 cannot use '{}'", c.checkpoint.dir));
}

// bf16 mixed precision on the GPU; the CPU reference always computes in f32.
DType activation_type(const RuntimeConfig& runtime, Device device) {
  return device == Device::cuda && runtime.precision == Precision::bf16 ? DType::bf16 : DType::f32;
}

DType training_activations(const ExperimentConfig& c) {
  return activation_type(c.runtime, select_device(c.runtime.device));
}

// The memory a training run needs (model, optimizer state, one micro-batch of activations), printed, and
// refused with the numbers when the device cannot hold it.
MemoryPlan plan_training_memory(const ExperimentConfig& c, const ProcessGrid& grid) {
  const Device device = select_device(c.runtime.device);
  const DType dtype = activation_type(c.runtime, device);
  const int tp = grid.tp->size();
  const int shards = c.parallel.zero1 ? grid.dp->size() : 1;  // ZeRO-1 keeps 1/ranks of the moments per rank
  MemoryPlan plan = Model::memory_plan(c.model, dtype, c.train.micro_batch, c.data.seq_len, true, tp);
  plan.append(Optimizer::memory_plan(c.model, dtype, tp, shards));
  plan.check_fits(device,
                  fmt::format("memory plan per rank on {}{}", device_name(device),
                              tp > 1 ? fmt::format(" (1/{} of the model's tensors)", tp) : std::string()),
                  "lower train.micro_batch or data.seq_len, or use more GPUs");
  return plan;
}

// The dp × tp grid over every rank of the run, each rank on the GPU of its node-local rank.
ProcessGrid make_grid(const ExperimentConfig& c) {
  const int tp = static_cast<int>(c.parallel.tp);
  return join_process_grid(tp, c.runtime.device, tensor_parallel_error(c.model, tp), c.source + ": parallel.tp");
}

// Flat float32 host values as a [1, n] tensor.
Tensor host_tensor(std::vector<float>& values) {
  const auto n = static_cast<int64_t>(values.size());
  return Tensor{values.data(), 1, n, n, DType::f32, Device::cpu};
}

}  // namespace

Trainer::Trainer(const ExperimentConfig& config)
    : config_(config),
      grid_(make_grid(config)),
      dp_(*grid_.dp),
      memory_plan_(plan_training_memory(config, grid_)),
      passes_(objective_passes(config)),
      train_data_(open_data(config.data.train, "data.train", config)),
      val_data_(open_validation_data(config)),
      checkpoint_lock_(lock_checkpoint_dir(config, grid_.world)),
      model_(config.model, select_device(config.runtime.device), training_activations(config), grid_.tp.get()),
      optimizer_(model_, dp_, *grid_.tp, config.parallel.zero1),
      metrics_(grid_.world.rank() == 0 ? config.metrics.listen : "") {
  const DataConfig& d = config_.data;
  start_from_checkpoint_or_init();
  // The checkpoints' host snapshot is allocated in the background while the first steps run.
  if (grid_.world.rank() == 0 && state_.step < config_.train.steps)
    writer_ = std::make_unique<BackgroundCheckpointWriter>(config_.model, model_.device());

  LoaderOptions options;
  options.seq_len = d.seq_len;
  options.eos_id = d.eos_id;
  options.global_batch = config_.train.global_batch;
  options.micro_batch = config_.train.micro_batch;
  options.random = d.order == DataOrder::random;
  options.rank = dp_.rank();
  options.ranks = dp_.size();
  options.seed = d.seed;
  loader_ = std::make_unique<BatchLoader>(train_data_, options, state_.step);

  if (!config_.train.metrics_jsonl.empty() && grid_.world.rank() == 0) {
    const std::filesystem::path path(config_.train.metrics_jsonl);
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    jsonl_.open(path, std::ios::app);
    require_input(jsonl_.good(), fmt::format("train.metrics_jsonl: cannot write '{}'", path.string()));
  }
  for (const Pass& p : passes_) flops_per_token_ += 3 * forward_flops_per_token(config_.model, p.pattern, d.seq_len);
  last_loss_.assign(passes_.size(), NAN);
}

Trainer::~Trainer() = default;  // writer_ goes first: it waits for the write in flight

void Trainer::request_stop() { g_stop_requested.store(true); }

void Trainer::start_from_checkpoint_or_init() {
  state_.config_yaml = experiment_config_to_yaml(config_);
  state_.seed = config_.train.seed;
  if (config_.checkpoint.resume == ResumeMode::automatic) {
    // Checkpoints hold full tensors; each rank reads the slices it holds and keeps its owned range.
    // The parameters pass through the host in full (Optimizer::set_parameters takes the whole slice table).
    std::vector<float> params;
    const std::vector<std::string> paths = list_checkpoints(config_.checkpoint.dir);
    std::string newest_problem;
    for (const std::string& path : paths) {
      params.resize(model_.table().total_elements());
      std::vector<HeldValues> held = held_state();
      held[0] = {{0, model_.table().total_elements()}, host_tensor(params)};
      try {
        TrainingState loaded = load_distributed_checkpoint(path, config_.model, model_.table(), held);
        optimizer_.set_parameters(params);
        loaded.config_yaml = state_.config_yaml;
        state_ = std::move(loaded);
        spdlog::info("resuming from {} at step {} ({} tokens seen)", path, state_.step, state_.tokens);
        return;
      } catch (const InputError& e) {
        spdlog::warn("not resuming from {}: {}", path, e.what());
        if (newest_problem.empty()) newest_problem = e.what();
      }
    }
    // Starting over would soon prune them: a run that cannot use any of them stops instead.
    require_input(paths.empty(),
                  fmt::format("checkpoint.dir: '{}' holds {} checkpoint(s) this run cannot resume from (the newest: {}); "
                              "move them away to start over there, or set checkpoint.resume: never",
                              config_.checkpoint.dir, paths.size(), newest_problem));
  }
  zero_tensor(optimizer_.moment(0));
  zero_tensor(optimizer_.moment(1));
  if (!config_.train.init_from.empty()) {
    ModelConfig stored = read_checkpoint_model_config(config_.train.init_from);
    stored.init_std = config_.model.init_std;
    require_input(stored == config_.model,
                  fmt::format("train.init_from: '{}' holds a model whose config differs from the model section:\n{}",
                              config_.train.init_from, model_config_to_yaml(stored)));
    std::vector<float> params(model_.table().total_elements());
    load_model_parameters(config_.train.init_from, config_.model, model_.table(), params.data());
    optimizer_.set_parameters(params);
    spdlog::info("starting from the model of {}", config_.train.init_from);
  } else {
    optimizer_.set_parameters(initial_parameters(config_.model, model_.table(), config_.train.seed));
  }
}

int64_t Trainer::bucket_elements() const {
  return std::max<int64_t>(1, static_cast<int64_t>(config_.parallel.bucket_mb * (1 << 20) / sizeof(float)));
}

double Trainer::update(const Pass& pass, const Batch& batch, double lr) {
  const OptimConfig& o = config_.optim;
  optimizer_.zero_gradients();
  const Tensor grads = optimizer_.gradients();
  double loss = 0;
  // Each data-parallel rank adds 1/(micro-batches · ranks) of its micro-batch means; the sum over ranks is
  // the batch mean. The gradients are summed over the ranks in buckets during the last backward pass: all of
  // them, or with ZeRO-1 only the owned range on each rank.
  const double weight = 1.0 / static_cast<double>(batch.micro_batches * dp_.size());
  GradientReducer reducer(dp_, grads, optimizer_.sharded() ? optimizer_.ranges() : std::vector<int64_t>{},
                          bucket_elements());
  for (int64_t i = 0; i < batch.micro_batches; ++i) {
    const bool last = i + 1 == batch.micro_batches;
    const ForwardInput input{batch.micro_inputs(i), batch.micro_batch, batch.seq_len, pass.pattern};
    const LossSum l = model_.forward(input, LossOutput{batch.micro_targets(i), grads, weight});
    model_.backward(grads, last ? GradientsReady([&](int64_t offset) { reducer.ready(offset); }) : GradientsReady{});
    loss += l.mean() * weight;
  }
  reducer.finish();
  dp_.allreduce_sum(std::span<double>(&loss, 1));
  const double norm = optimizer_.global_grad_norm();
  const bool finite = std::isfinite(loss) && std::isfinite(norm);
  if (finite) {
    nonfinite_in_a_row_ = 0;
    ++state_.optimizer_updates;
    AdamWStep s;
    s.lr = lr;
    s.beta1 = o.betas[0];
    s.beta2 = o.betas[1];
    s.eps = o.eps;
    s.weight_decay = o.weight_decay;
    s.grad_scale = norm > o.grad_clip ? o.grad_clip / (norm + 1e-6) : 1.0;
    s.t = state_.optimizer_updates;
    optimizer_.update(s);
  } else {
    ++state_.skipped_updates;
    ++nonfinite_in_a_row_;
    spdlog::warn("step {} {} pass: non-finite loss {} or gradient norm {}; update skipped ({} in a row)",
                 state_.step, pass.name, loss, norm, nonfinite_in_a_row_);
  }
  metrics_.record_update(pass.name, loss, norm, lr, !finite);
  write_jsonl({{"step", state_.step},
               {"pass", pass.name},
               {"loss", loss},
               {"lr", lr},
               {"grad_norm", norm},
               {"tokens", state_.tokens},
               {"skipped", !finite}});
  last_grad_norm_ = norm;
  if (nonfinite_in_a_row_ >= config_.train.max_nonfinite)
    throw std::runtime_error(fmt::format("training diverged: {} updates in a row had a non-finite loss or gradient "
                                         "norm (last at step {}: loss {}, norm {}); see train.max_nonfinite",
                                         nonfinite_in_a_row_, state_.step, loss, norm));
  return loss;
}

void Trainer::step() {
  const auto start = Clock::now();
  const double lr = learning_rate(config_.optim, config_.train.steps, state_.step);
  const double wait_before = loader_->wait_seconds();
  const Batch batch = loader_->next();
  const double waited = loader_->wait_seconds() - wait_before;
  const int64_t batch_tokens = config_.train.global_batch * config_.data.seq_len;
  state_.tokens += batch_tokens;
  for (size_t i = 0; i < passes_.size(); ++i) last_loss_[i] = update(passes_[i], batch, lr);
  ++state_.step;
  ++steps_this_run_;
  state_.loader_positions = {loader_->position()};
  last_lr_ = lr;
  const double seconds = seconds_since(start);
  window_seconds_ += seconds;
  window_tokens_ += batch_tokens;
  const double mfu = model_.device() == Device::cuda
                         ? flops_per_token_ * batch_tokens / seconds / (kHopperPeakFlops * grid_.world.size())
                         : -1;
  metrics_.record_step(state_.step, batch_tokens, seconds, batch_tokens / seconds, mfu, waited);
}

std::vector<HeldValues> Trainer::held_state() const {
  const Range owned{optimizer_.owned_begin(), optimizer_.owned_end()};
  return {{owned, optimizer_.master()}, {owned, optimizer_.moment(0)}, {owned, optimizer_.moment(1)}};
}

std::string Trainer::save_checkpoint() {
  const auto start = Clock::now();
  const std::string path = (std::filesystem::path(config_.checkpoint.dir) / checkpoint_file_name(state_.step)).string();
  const bool root = grid_.world.rank() == 0;
  if (root && !writer_) writer_ = std::make_unique<BackgroundCheckpointWriter>(config_.model, model_.device());
  finish_checkpoint();  // the snapshot is allocated, and free again
  if (root) std::filesystem::create_directories(config_.checkpoint.dir);
  // Collective over all ranks: world rank 0 gathers every full tensor into its host snapshot.
  gather_checkpoint(config_.model, model_.table(), held_state(), grid_.world, root ? &writer_->snapshot() : nullptr);
  if (root) {
    last_checkpoint_stall_ = seconds_since(start);
    spdlog::info("checkpoint step {}: state copied in {:.2f} s; writing {} in the background", state_.step,
                 last_checkpoint_stall_, path);
    const uint64_t bytes = writer_->snapshot().bytes();
    const int64_t step = state_.step;
    writer_->start(path, state_, [this, path, bytes, step, written = Clock::now()] {
      prune_checkpoints(config_.checkpoint.dir, config_.checkpoint.keep);
      const double seconds = seconds_since(written);
      metrics_.record_checkpoint(step, seconds);
      spdlog::info("checkpoint {} written ({:.2f} GB in {:.2f} s, {:.2f} GB/s)", path, bytes / 1e9, seconds,
                   bytes / 1e9 / seconds);
    });
  }
  return path;
}

void Trainer::finish_checkpoint() {
  std::exception_ptr failure;
  if (writer_) {
    try {
      writer_->wait();
    } catch (...) {
      failure = std::current_exception();
    }
  }
  double failed = failure ? 1.0 : 0.0;  // a failure on rank 0 ends every rank
  grid_.world.allreduce_sum(std::span<double>(&failed, 1));
  if (failure) std::rethrow_exception(failure);
  if (failed > 0) throw std::runtime_error("a checkpoint could not be written (see rank 0's error)");
}

void Trainer::validate() {
  std::vector<Pattern> patterns = {Pattern::dense(), Pattern::dilated(config_.train.arl_dilation)};
  if (config_.train.objective == Objective::adapt) patterns = {passes_[0].pattern, Pattern::dense()};
  const DataConfig& d = config_.data;
  const WindowSource source = [&](int64_t k, int32_t* inputs, int32_t* targets) {
    val_data_->window(k, d.seq_len, d.eos_id, inputs, targets);
  };
  std::string line = fmt::format("validation at step {}:", state_.step);
  nlohmann::json losses = nlohmann::json::object();
  for (const Pattern& p : patterns) {
    const double loss =
        window_loss(model_, p, source, config_.train.val_batches, d.seq_len, config_.train.micro_batch).mean();
    metrics_.record_validation(p.text(), loss);
    line += fmt::format(" {} {:.4f}", p.text(), loss);
    losses[p.text()] = loss;
  }
  spdlog::info("{}", line);
  write_jsonl({{"step", state_.step}, {"tokens", state_.tokens}, {"validation", losses}});
}

void Trainer::write_jsonl(nlohmann::json record) {
  if (!jsonl_.is_open()) return;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  record["time"] = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()) / 1e3;
  jsonl_ << record.dump() << '\n' << std::flush;
}

void Trainer::log_progress(double elapsed_seconds) {
  std::string losses;
  for (size_t i = 0; i < passes_.size(); ++i) losses += fmt::format(" {} {:.4f}", passes_[i].name, last_loss_[i]);
  const double rate = window_tokens_ / std::max(window_seconds_, 1e-9);
  const double per_step = elapsed_seconds / static_cast<double>(steps_this_run_);
  spdlog::info("step {}/{} | loss{} | lr {:.2e} | grad norm {:.3f} | {} tok/s | {} elapsed, {} left", state_.step,
               config_.train.steps, losses, last_lr_, last_grad_norm_, count_text(rate), clock_text(elapsed_seconds),
               clock_text(per_step * static_cast<double>(config_.train.steps - state_.step)));
  window_seconds_ = 0;
  window_tokens_ = 0;
}

std::optional<Trainer::Outcome> Trainer::stop_reason() {
  double signalled = g_stop_requested.load() ? 1.0 : 0.0;  // a signal to any rank stops them all
  grid_.world.allreduce_sum(std::span<double>(&signalled, 1));
  if (config_.train.stop_after > 0 && state_.step >= config_.train.stop_after) return Outcome::planned_stop;
  if (signalled > 0) return Outcome::preempted;
  return std::nullopt;
}

Trainer::Outcome Trainer::stop(Outcome why) {
  const char* raise = "to continue, run it again with a larger train.stop_after, or with train.stop_after=0";
  if (why == Outcome::preempted) {
    g_stop_requested.store(false);
    spdlog::info("stopping at step {} (signal); run the same command again to continue", state_.step);
    save_checkpoint();
    finish_checkpoint();
  } else if (steps_this_run_ > 0) {
    spdlog::info("stopping at step {} (train.stop_after={}); {}", state_.step, config_.train.stop_after, raise);
    save_checkpoint();
    finish_checkpoint();
  } else {
    spdlog::info("stopping at step {}, where the run resumed: train.stop_after={} is reached; {}", state_.step,
                 config_.train.stop_after, raise);
  }
  metrics_.linger(config_.metrics.linger_seconds);
  return why;
}

Trainer::Outcome Trainer::run() {
  const TrainConfig& t = config_.train;
  spdlog::info("training {} parameters ({}), {} passes per batch of {} x {} tokens, steps {} -> {}",
               model_.table().total_elements(), choice_name(t.objective), passes_.size(), t.global_batch, config_.data.seq_len,
               state_.step, t.steps);
  const auto start = Clock::now();
  while (state_.step < t.steps) {
    if (const std::optional<Outcome> why = stop_reason()) return stop(*why);
    step();
    if (state_.step % t.log_every == 0 || state_.step == t.steps) log_progress(seconds_since(start));
    if (t.val_every > 0 && state_.step % t.val_every == 0) validate();
    if (config_.checkpoint.every > 0 && state_.step % config_.checkpoint.every == 0 && state_.step < t.steps)
      save_checkpoint();
  }
  if (steps_this_run_ > 0) {
    save_checkpoint();
    finish_checkpoint();
    spdlog::info("finished {} steps ({} tokens, {} skipped updates) in {}", t.steps, state_.tokens,
                 state_.skipped_updates, clock_text(seconds_since(start)));
  } else {
    spdlog::info("nothing to do: the checkpoint in {} is already at step {}", config_.checkpoint.dir, state_.step);
  }
  metrics_.linger(config_.metrics.linger_seconds);
  return Outcome::finished;
}

}  // namespace ratplus
