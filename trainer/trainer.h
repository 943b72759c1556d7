// The training loop (SPEC §4, §9): one loop for every objective. An objective decides which passes a
// batch gets (joint: a sparse dilated(L*) pass then a dense pass, each with its own optimizer update;
// dense: one dense pass; adapt: one pass under train.pattern). Each pass accumulates gradients over the
// micro-batches, clips the global norm, and applies AdamW unless the loss or the norm is non-finite.
// Checkpoints, validation, progress lines, the JSONL log and Prometheus metrics are part of the loop.
// Under an MPI launcher every rank is a data-parallel replica: it takes its share of each batch (SPEC §9),
// gradients and losses are summed over ranks before the update, and rank 0 alone logs, serves metrics and
// writes checkpoints. With parallel.zero1 the gradients are reduce-scattered instead, each rank applies
// AdamW to the range of parameters it owns (keeping moments for that range only), and the updated
// parameters are all-gathered. The gradient sums run in buckets that start during the backward pass.
// With parallel.tp > 1 the ranks form a dp × tp grid (ProcessGrid): each tensor-parallel group runs one
// model split Megatron-style over its ranks (Model with a tp group) on the same data, and the data-parallel
// groups above work on each slice as described. Checkpoints always hold full tensors, so a run resumes in
// any layout. A checkpoint stops training only while world rank 0 gathers the state into its host snapshot;
// a background thread then writes the file (BackgroundCheckpointWriter) while training goes on, and the next
// checkpoint, the end of the run or a stop waits for that write and ends every rank if it failed. From its start to its end the run holds a lock on checkpoint.dir (DirLock, taken by world rank
// 0, which writes the checkpoints), so a second run on the directory is refused before it writes anything.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/background_writer.h"
#include "checkpoint/distributed_checkpoint.h"
#include "core/buffer.h"
#include "core/config.h"
#include "core/dir_lock.h"
#include "data/batch_loader.h"
#include "model/model.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"

namespace ratplus {

// One optimizer update of a batch.
struct Pass {
  std::string name;  // "sparse", "dense" or "adapt" (the `pass` of the metrics)
  Pattern pattern;
};

class Trainer {
 public:
  // Opens the data, locks checkpoint.dir (creating it and checking that it can be written: InputError naming
  // the key otherwise), builds model and optimizer state; resumes from the newest good checkpoint of
  // checkpoint.dir (checkpoint.resume: auto), else starts from train.init_from, else initialises from train.seed.
  explicit Trainer(const ExperimentConfig& config);
  ~Trainer();

  // How run() ended: every step of train.steps done, or stopped with a checkpoint to resume from at
  // train.stop_after (planned_stop) or on request (preempted: SIGTERM or SIGINT to any rank).
  enum class Outcome { finished, planned_stop, preempted };
  // Runs until train.steps are done (then writes the final checkpoint), or until the step number reaches
  // train.stop_after or a stop was requested (then writes a checkpoint to resume from, unless the run started
  // at train.stop_after: then there is nothing to write).
  Outcome run();
  // One batch: every pass of the objective. Public for tests.
  void step();

  // Asks run() to stop at the next step boundary (async-signal-safe); run() then returns preempted and clears
  // the request.
  static void request_stop();

  const TrainingState& state() const { return state_; }
  Model& model() { return model_; }
  Optimizer& optimizer() { return optimizer_; }
  const std::vector<Pass>& passes() const { return passes_; }
  // Collective: waits for the previous checkpoint's write (finish_checkpoint), gathers the state into world
  // rank 0's host snapshot and starts writing it in the background; returns the path being written. Older
  // checkpoints beyond checkpoint.keep are pruned once the new one is complete and durable.
  std::string save_checkpoint();
  // Collective: waits for the checkpoint write in flight, if any; when it failed, rank 0 rethrows its error
  // (naming the file) and the other ranks throw as well.
  void finish_checkpoint();
  // Seconds the last save_checkpoint() held training up (on world rank 0; 0 elsewhere and before any).
  double last_checkpoint_stall() const { return last_checkpoint_stall_; }

 private:
  void start_from_checkpoint_or_init();
  std::optional<Outcome> stop_reason();  // collective: whether and why the run stops before the next step
  Outcome stop(Outcome why);             // writes the checkpoint and says how to continue
  double update(const Pass& pass, const Batch& batch, double lr);  // returns the pass's loss
  int64_t bucket_elements() const;
  // What this rank holds of each checkpoint tensor group (parameters, AdamW m and v): ranges and values.
  std::vector<HeldValues> held_state() const;
  void validate();
  // Appends one record to train.metrics_jsonl (when it is open), with the wall-clock time.
  void write_jsonl(nlohmann::json record);
  void log_progress(double elapsed_seconds);

  // In the order of construction: the inputs are checked before the directory is locked, and the directory
  // before the model is allocated.
  ExperimentConfig config_;
  ProcessGrid grid_;        // all ranks, and this rank's data- and tensor-parallel groups
  Communicator& dp_;        // the data-parallel group (one rank without an MPI launcher)
  MemoryPlan memory_plan_;  // checked against the device before the model is allocated
  std::vector<Pass> passes_;
  std::shared_ptr<const TokenStream> train_data_, val_data_;
  std::unique_ptr<DirLock> checkpoint_lock_;  // on world rank 0
  Model model_;
  Optimizer optimizer_;  // gradients, AdamW moments, master weights, ZeRO-1 ranges
  std::unique_ptr<BatchLoader> loader_;
  TrainingState state_;
  TrainingMetrics metrics_;
  std::ofstream jsonl_;  // train.metrics_jsonl, on world rank 0
  int64_t nonfinite_in_a_row_ = 0;
  int64_t steps_this_run_ = 0;
  std::vector<double> last_loss_;       // per pass, for progress lines
  double last_grad_norm_ = 0, last_lr_ = 0;
  double flops_per_token_ = 0;          // training FLOPs of one token through every pass (SPEC §8)
  double window_seconds_ = 0;           // time spent in steps since the last progress line
  int64_t window_tokens_ = 0;
  double last_checkpoint_stall_ = 0;
  // Last, so that it is destroyed first: its thread may still be writing, and uses the members above.
  std::unique_ptr<BackgroundCheckpointWriter> writer_;  // on world rank 0
};

}  // namespace ratplus
