// The MPI communicator (host buffers) and the hook to the NCCL one, for code inside parallel/ that builds
// communicators over MPI groups. Everything else uses communicator.h.
#pragma once

// The C API only: Open MPI's deprecated C++ bindings are neither needed nor linked.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdint>
#include <memory>

#include "parallel/communicator.h"

namespace ratplus {

// MPI takes counts and displacements as int: a message larger than this is sent in pieces.
constexpr int64_t kMpiCountLimit = INT_MAX;

// Collectives over `group` on host memory (device tensors are copied to the host and back). No count or
// displacement passed to MPI exceeds count_limit (at most kMpiCountLimit; tests lower it to exercise the
// splitting); groups split from it keep the limit. Takes the group over and frees it, unless it is
// MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm group, int local_rank,
                                                    int64_t count_limit = kMpiCountLimit);

// Collectives over `group` on device memory through NCCL, on the current GPU (host values and tensors
// go through MPI on the same group). Takes the group over. Only in builds with NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm group, int local_rank);

// Throws std::runtime_error naming the call when an MPI call failed.
void check_mpi(int code, const char* what);

}  // namespace ratplus
