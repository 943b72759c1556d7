// Training checkpoints of a dp × tp run: saved through rank 0 of the run one full tensor at a time, loaded
// by every rank on its own (the slices it holds, the range it keeps).
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
//      full tensor and writes it to the file (checkpoint/training_checkpoint.h's writer, an AtomicFile).
//   3. outcome: one all-reduce; rank 0 says whether the file was committed.
// Rank 0 takes part in every step even after its writing failed (it stops writing and removes the
// temporary), and every rank then throws, so a full disk or a bad path ends all ranks instead of leaving
// them waiting. Memory: a rank stages only its part of one tensor at a time; rank 0 holds in addition two
// buffers of one full tensor (the parts as received, and the tensor assembled from them). Counts and
// offsets of each gather are those of one tensor; MPI splits larger messages (mpi_communicator.h).
#pragma once

#include <string>
#include <vector>

#include "checkpoint/gather_plan.h"
#include "checkpoint/training_checkpoint.h"
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace ratplus {

// What a rank holds of one tensor group.
struct HeldValues {
  Range range;    // of the flat vector of the rank's slice table
  Tensor values;  // [1, range.size()], contiguous: f32 or bf16, on the host or the device
};

// Collective over `world` (see above): writes the training checkpoint `path` from what each rank holds
// (`held`: one entry per tensor group). Between them, the ranks of each tensor-parallel rank must hold every
// element of their slice table. Throws on every rank when the file could not be written (rank 0 rethrows
// its own error).
void save_distributed_checkpoint(const std::string& path, const ModelConfig& model, const TrainingState& state,
                                 const ParameterTable& slices, const std::vector<HeldValues>& held,
                                 Communicator& world);

// Not collective: checks the file as load_training_checkpoint does, then reads, group by group and tensor by
// tensor, the part of `slices` inside each held range (only those slices are read from the file) into the
// held values.
TrainingState load_distributed_checkpoint(const std::string& path, const ModelConfig& model,
                                          const ParameterTable& slices, const std::vector<HeldValues>& held);

}  // namespace ratplus
