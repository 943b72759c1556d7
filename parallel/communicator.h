// Collectives between the processes of a run. One interface, two implementations: MPI on host buffers
// (device tensors are staged through the host; the CPU backend and CI) and NCCL on device buffers (its own
// stream, ordered after the work already queued on the device). A run without an MPI launcher is a single
// rank that needs no MPI at all. Data- and tensor-parallel code only ever calls this interface.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/tensor.h"

namespace ratplus {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this node (picks the GPU)

  // The group of ranks that pass the same color, ranked by key; collective over this communicator. With
  // device == cuda (and a build with NCCL) the group's device tensors travel through NCCL.
  virtual std::unique_ptr<Communicator> split(int color, int key, Device device) = 0;

  // In place: every rank ends with the element-wise sum over ranks. Contiguous f32 or bf16 tensors on the
  // communicator's device (f64 as well on the host).
  virtual void allreduce_sum(Tensor t) = 0;
  virtual void allreduce_sum(std::span<double> values) = 0;  // host values
  // Sharded collectives over a flat tensor [1, N] cut at offsets[0] = 0 ≤ … ≤ offsets[size] = N (ranges may
  // be empty): reduce_scatter_sum (f32) leaves rank r's range [offsets[r], offsets[r+1]) holding the sum over
  // ranks (the rest is unspecified); allgather (f32 or bf16) gives every rank every rank's range.
  virtual void reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) = 0;
  virtual void allgather(Tensor t, std::span<const int64_t> offsets) = 0;
  // Rank `root` collects the ranges of a flat vector cut at offsets as above: each rank passes the values of
  // its own range as `mine` (f32 or bf16, contiguous, on any device); root receives every range in `all`
  // (host f32, [1, offsets.back()]; ignored elsewhere). Through host memory: for checkpoints, not for steps.
  virtual void gather(Tensor mine, Tensor all, std::span<const int64_t> offsets, int root) = 0;

  // The same sums started without waiting: they may run while later device work proceeds, and
  // finish_started() orders all of them before any device work queued after it (the tensors must not be
  // touched in between). Implementations without overlap complete them at once.
  virtual void start_allreduce_sum(Tensor t) { allreduce_sum(t); }
  virtual void start_reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) { reduce_scatter_sum(t, offsets); }
  virtual void finish_started() {}

  virtual void barrier() = 0;
};

// The processes of this run: MPI's world when started by mpirun/mpiexec/srun (MPI is initialised on first
// use and finalised at exit), otherwise a single rank.
Communicator& world();

}  // namespace ratplus
