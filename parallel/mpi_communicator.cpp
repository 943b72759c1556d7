// The MPI communicator and the choice between it and a single rank. MPI is only initialised when an MPI
// launcher started the process (it sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK), so a plain
// `ratplus train` needs no MPI runtime. Device tensors are copied to the host, reduced, and copied back;
// bf16 tensors are summed as f32 and rounded once. Every blocking call is timed by the collective watchdog.
#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/device.h"
#include "parallel/collective_watchdog.h"

namespace ratplus {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(fmt::format("{}: {}", what, std::string(text, length)));
}

namespace {

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

class SingleRank final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::unique_ptr<Communicator> split(int, int, Device) override { return std::make_unique<SingleRank>(); }
  void allreduce_sum(Tensor) override {}
  void allreduce_sum(std::span<double>) override {}
  void reduce_scatter_sum(Tensor, std::span<const int64_t>) override {}
  void allgather(Tensor, std::span<const int64_t>) override {}
  void barrier() override {}
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int local_rank) : comm_(comm), local_rank_(local_rank) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  std::unique_ptr<Communicator> split(int color, int key, Device device) override {
    MPI_Comm group;
    {
      const CollectiveWait wait(world_rank_, "MPI_Comm_split");
      check_mpi(MPI_Comm_split(comm_, color, key, &group), "MPI_Comm_split");
    }
#ifdef RATPLUS_HAVE_NCCL
    // NCCL wants one rank per GPU; a group with ranks sharing a GPU (more ranks than GPUs) stays on MPI.
    if (device == Device::cuda) {
      if (gpus_distinct(group)) return make_nccl_communicator(group, local_rank_);
      if (rank_ == 0) spdlog::warn("ranks share GPUs: their collectives go through MPI and host memory, not NCCL");
    }
#else
    (void)device;
#endif
    return make_mpi_communicator(group, local_rank_);
  }

  void allreduce_sum(Tensor t) override {
    check_internal(t.contiguous(), "allreduce_sum: contiguous tensor expected");
    const CollectiveWait wait(world_rank_, "MPI_Allreduce");
    if (t.device == Device::cpu && (t.dtype == DType::f32 || t.dtype == DType::f64)) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.data, static_cast<int>(t.numel()),
                              t.dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM, comm_),
                "MPI_Allreduce");
      return;
    }
    check_internal(t.dtype == DType::f32 || t.dtype == DType::bf16, "allreduce_sum: f32 or bf16 tensors expected");
    std::vector<float> host = to_host_floats(t);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, host.data(), static_cast<int>(host.size()), MPI_FLOAT, MPI_SUM, comm_),
              "MPI_Allreduce");
    from_host_floats(t, host);
  }

  void allreduce_sum(std::span<double> values) override {
    const CollectiveWait wait(world_rank_, "MPI_Allreduce");
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, comm_),
              "MPI_Allreduce");
  }

  void reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) override {
    const CollectiveWait wait(world_rank_, "MPI_Reduce_scatter");
    std::vector<int> counts = range_counts(offsets);
    with_host_copy(t, [&](float* data) {
      // MPI writes rank r's reduced range to the start of the receive buffer; move it into place.
      std::vector<float> mine(counts[rank_]);
      check_mpi(MPI_Reduce_scatter(data, mine.data(), counts.data(), MPI_FLOAT, MPI_SUM, comm_),
                "MPI_Reduce_scatter");
      std::copy(mine.begin(), mine.end(), data + offsets[rank_]);
    });
  }

  void allgather(Tensor t, std::span<const int64_t> offsets) override {
    const CollectiveWait wait(world_rank_, "MPI_Allgatherv");
    std::vector<int> counts = range_counts(offsets), displacements(size_);
    for (int r = 0; r < size_; ++r) displacements[r] = static_cast<int>(offsets[r]);
    with_host_copy(t, [&](float* data) {
      check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displacements.data(),
                               MPI_FLOAT, comm_),
                "MPI_Allgatherv");
    });
  }

  void barrier() override {
    const CollectiveWait wait(world_rank_, "MPI_Barrier");
    check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
  }

 private:
  // Whether every rank of `group` uses a different GPU (collective over the group).
  bool gpus_distinct(MPI_Comm group) const {
    const CollectiveWait wait(world_rank_, "MPI_Allgather of the GPUs");
    constexpr int kLength = 320;
    std::string mine = current_gpu_identity();
    mine.resize(kLength, '\0');
    int size = 0;
    MPI_Comm_size(group, &size);
    std::vector<char> all(static_cast<size_t>(size) * kLength);
    check_mpi(MPI_Allgather(mine.data(), kLength, MPI_CHAR, all.data(), kLength, MPI_CHAR, group), "MPI_Allgather");
    std::vector<std::string> ids;
    for (int r = 0; r < size; ++r) ids.emplace_back(all.data() + static_cast<size_t>(r) * kLength, kLength);
    std::sort(ids.begin(), ids.end());
    return std::adjacent_find(ids.begin(), ids.end()) == ids.end();
  }

  std::vector<int> range_counts(std::span<const int64_t> offsets) const {
    check_internal(static_cast<int>(offsets.size()) == size_ + 1, "sharded collective: one range per rank");
    std::vector<int> counts(size_);
    for (int r = 0; r < size_; ++r) counts[r] = static_cast<int>(offsets[r + 1] - offsets[r]);
    return counts;
  }

  // Runs f on the tensor's elements as f32 in host memory (staging device tensors through the host; bf16
  // widens exactly, so values that only move come back unchanged).
  template <class F>
  void with_host_copy(Tensor t, F&& f) {
    check_internal((t.dtype == DType::f32 || t.dtype == DType::bf16) && t.contiguous(),
                   "sharded collective: flat f32 or bf16 tensor expected");
    if (t.device == Device::cpu && t.dtype == DType::f32) return f(t.ptr<float>());
    std::vector<float> host = to_host_floats(t);
    f(host.data());
    from_host_floats(t, host);
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, world_rank_ = 0;
};

// MPI for the lifetime of the process: initialised with the first world() call, finalised at exit after
// every communicator built from it is gone.
class MpiWorld {
 public:
  MpiWorld() {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank = 0, local_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm node;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_free(&node);
    comm = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, local_rank);
  }
  ~MpiWorld() {
    comm.reset();
    MPI_Finalize();
  }
  std::unique_ptr<Communicator> comm;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm group, int local_rank) {
  return std::make_unique<MpiCommunicator>(group, local_rank);
}

Communicator& world() {
  if (!launched_by_mpi()) {
    static SingleRank single;
    return single;
  }
  static MpiWorld mpi;
  return *mpi.comm;
}

}  // namespace ratplus
