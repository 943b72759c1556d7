// Training checkpoints of a dp × tp run: gathered into a host snapshot on rank 0 of the run and written from
// there (at once, or by a background thread: checkpoint/background_writer.h), loaded by every rank on its own
// (the slices it holds, the range it keeps).
//
// What a rank holds, per tensor group g (0 = /model, 1 = /optim/m, 2 = /optim/v): its tensor-parallel
// slice table `slices` = ParameterTable(model, tp_rank, tp_size), a range [begin, end) of that table's flat
// vector (its ZeRO-1 range, or all of it) and the values of that range (host or device, f32 or bf16).
//
// Saving: the protocol. Every rank of the run calls save_distributed_checkpoint with the same path, model
// and state, and its world communicator (ProcessGrid::world); all collectives below run on that group and no
// other, and nothing outside this call takes part, so deadlock-freedom rests on this list alone:
//   1. layout: one all-reduce of (1 + 2·3) numbers per rank; every rank then knows each rank's tp rank and
//      ranges and computes the same GatherPlan (gather_plan.h): which rank sends which part of each tensor.
//   2. tensors: for g = 0, 1, 2 and for each tensor of ParameterTable(model) in table order, one gather to
//      rank 0; rank r sends the part the plan gives it (often nothing). Rank 0 places the parts into the
//      full tensor in its snapshot (straight there when the plan gathers in place: one tensor-parallel rank).
//   3. outcome: one all-reduce; rank 0 says whether the file was committed.
// gather_checkpoint is steps 1 and 2; save_distributed_checkpoint all three, writing between 2 and 3. A
// background write reports its outcome at the next checkpoint instead (the trainer's finish_checkpoint, one
// all-reduce). Rank 0 takes part in every step even after its writing failed, and every rank then throws, so
// a full disk or a bad path ends all ranks instead of leaving them waiting. Memory: a rank stages only its
// part of one tensor at a time; rank 0 holds the snapshot (every group in full: 12 bytes per parameter) and,
// unless the plan gathers in place, a buffer of one full tensor. Counts and offsets of each gather are those
// of one tensor; MPI splits larger messages (mpi_communicator.h).
#pragma once

#include <string>
#include <vector>

#include "checkpoint/gather_plan.h"
#include "checkpoint/training_checkpoint.h"
#include "core/buffer.h"
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace ratplus {

// What a rank holds of one tensor group.
struct HeldValues {
  Range range;    // of the flat vector of the rank's slice table
  Tensor values;  // [1, range.size()], contiguous: f32 or bf16, on the host or the device
};

// The tensors of a training checkpoint in host memory: every group's full tensors, laid out by
// ParameterTable(model), one group after another. Allocated once (host_staging memory, page-locked for a GPU
// run) and reused by every checkpoint of a run.
class CheckpointSnapshot {
 public:
  CheckpointSnapshot(const ModelConfig& model, Device peer);
  const ModelConfig& model() const { return model_; }
  const ParameterTable& table() const { return table_; }
  float* group(int g) { return static_cast<float*>(buffer_.data()) + g * table_.total_elements(); }
  const float* group(int g) const { return static_cast<const float*>(buffer_.data()) + g * table_.total_elements(); }
  uint64_t bytes() const { return buffer_.bytes(); }

 private:
  ModelConfig model_;
  ParameterTable table_;
  Buffer buffer_;
};

// Collective over `world` (steps 1 and 2 above): rank 0 receives the full tensors into `snapshot`, which the
// other ranks pass as null.
void gather_checkpoint(const ModelConfig& model, const ParameterTable& slices, const std::vector<HeldValues>& held,
                       Communicator& world, CheckpointSnapshot* snapshot);

// Not collective: writes `snapshot` as the training checkpoint `path` (an AtomicFile: complete or absent).
void write_checkpoint_snapshot(const std::string& path, const CheckpointSnapshot& snapshot, const TrainingState& state);

// Collective over `world` (see above): writes the training checkpoint `path` from what each rank holds
// (`held`: one entry per tensor group), through a snapshot on rank 0 allocated for this call. Between them, the ranks of each tensor-parallel rank must hold every
// element of their slice table. Throws on every rank when the file could not be written (rank 0 rethrows
// its own error).
void save_distributed_checkpoint(const std::string& path, const ModelConfig& model, const TrainingState& state,
                                 const ParameterTable& slices, const std::vector<HeldValues>& held,
                                 Communicator& world);

// Not collective: checks the file as load_training_checkpoint does, then reads, group by group and tensor by
// tensor, the part of `slices` inside each held range (only those slices are read from the file) into the
// held values: straight into host f32 values when the range holds the whole slice, else through a host buffer
// of one slice.
TrainingState load_distributed_checkpoint(const std::string& path, const ModelConfig& model,
                                          const ParameterTable& slices, const std::vector<HeldValues>& held);

}  // namespace ratplus
