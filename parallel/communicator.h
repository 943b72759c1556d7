// Collectives between the processes of a run. One interface; the MPI implementation works on host buffers
// (device tensors are staged through the host), and a run without an MPI launcher is a single rank that
// needs no MPI at all. Data- and tensor-parallel code only ever calls this interface.
#pragma once

#include <span>

#include "core/tensor.h"

namespace ratplus {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this node (picks the GPU)
  // In place: every rank ends with the element-wise sum over ranks. f32 tensors on any device.
  virtual void allreduce_sum(Tensor t) = 0;
  virtual void allreduce_sum(std::span<double> values) = 0;
  // Sharded collectives over a flat f32 tensor [1, N] cut at offsets[0] = 0 ≤ … ≤ offsets[size] = N:
  // reduce_scatter_sum leaves rank r's range [offsets[r], offsets[r+1]) holding the sum over ranks (the rest
  // is unspecified); allgather gives every rank every rank's range.
  virtual void reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) = 0;
  virtual void allgather(Tensor t, std::span<const int64_t> offsets) = 0;
  virtual void barrier() = 0;
};

// The processes of this run: MPI's world when started by mpirun/mpiexec/srun (MPI is initialised on first
// use and finalised at exit), otherwise a single rank.
Communicator& world();

}  // namespace ratplus
