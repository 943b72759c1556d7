// The MPI communicator and the choice between it and a single rank. MPI is only initialised when an MPI
// launcher started the process (it sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK), so a plain
// `ratplus train` needs no MPI runtime. Device tensors are copied to the host, reduced, and copied back;
// bf16 tensors are summed as f32 and rounded once. A message with more elements than the count limit (MPI
// counts and displacements are ints) is split into pieces of at most that many. Every blocking call is timed
// by the collective watchdog.
#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <string>
#include <type_traits>
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
  void gather(Tensor mine, Tensor all, std::span<const int64_t> offsets, int) override {
    const Tensor into = all.cols_slice(offsets[0], offsets[1] - offsets[0]);
    if (mine.dtype == DType::f32) return copy_tensor(into, mine);  // one copy, from any device
    from_host_floats(into, to_host_floats(mine));
  }
  void barrier() override {}
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int local_rank, int64_t count_limit)
      : comm_(comm), local_rank_(local_rank), count_limit_(count_limit) {
    check_internal(count_limit_ >= 1 && count_limit_ <= kMpiCountLimit, "MPI count limit out of range");
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
    return make_mpi_communicator(group, local_rank_, count_limit_);
  }

  void allreduce_sum(Tensor t) override {
    check_internal(t.contiguous(), "allreduce_sum: contiguous tensor expected");
    const CollectiveWait wait(world_rank_, "MPI_Allreduce");
    if (t.device == Device::cpu && t.dtype == DType::f64) return allreduce_pieces(t.ptr<double>(), t.numel());
    if (t.device == Device::cpu && t.dtype == DType::f32) return allreduce_pieces(t.ptr<float>(), t.numel());
    check_internal(t.dtype == DType::f32 || t.dtype == DType::bf16, "allreduce_sum: f32 or bf16 tensors expected");
    std::vector<float> host = to_host_floats(t);
    allreduce_pieces(host.data(), static_cast<int64_t>(host.size()));
    from_host_floats(t, host);
  }

  void allreduce_sum(std::span<double> values) override {
    const CollectiveWait wait(world_rank_, "MPI_Allreduce");
    allreduce_pieces(values.data(), static_cast<int64_t>(values.size()));
  }

  // One MPI_Reduce_scatter when the whole vector fits one message, else each range reduced onto its rank.
  void reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) override {
    const CollectiveWait wait(world_rank_, "MPI_Reduce_scatter");
    check_offsets(offsets);
    with_host_copy(t, [&](float* data) {
      if (fits_one_message(offsets)) {
        // MPI writes rank r's reduced range to the start of the receive buffer; move it into place.
        const std::vector<int> counts = range_counts(offsets);
        std::vector<float> mine(counts[rank_]);
        check_mpi(MPI_Reduce_scatter(data + offsets[0], mine.data(), counts.data(), MPI_FLOAT, MPI_SUM, comm_),
                  "MPI_Reduce_scatter");
        std::copy(mine.begin(), mine.end(), data + offsets[rank_]);
        return;
      }
      for (int r = 0; r < size_; ++r)
        for_each_piece(offsets[r], offsets[r + 1], [&](int64_t begin, int count) {
          check_mpi(MPI_Reduce(rank_ == r ? MPI_IN_PLACE : data + begin, data + begin, count, MPI_FLOAT, MPI_SUM, r,
                               comm_),
                    "MPI_Reduce");
        });
    });
  }

  // One MPI_Allgatherv when the whole vector fits one message, else each range broadcast from its rank.
  void allgather(Tensor t, std::span<const int64_t> offsets) override {
    const CollectiveWait wait(world_rank_, "MPI_Allgatherv");
    check_offsets(offsets);
    with_host_copy(t, [&](float* data) {
      if (fits_one_message(offsets)) {
        const std::vector<int> counts = range_counts(offsets), displacements = range_displacements(offsets);
        check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data + offsets[0], counts.data(),
                                 displacements.data(), MPI_FLOAT, comm_),
                  "MPI_Allgatherv");
        return;
      }
      for (int r = 0; r < size_; ++r)
        for_each_piece(offsets[r], offsets[r + 1], [&](int64_t begin, int count) {
          check_mpi(MPI_Bcast(data + begin, count, MPI_FLOAT, r, comm_), "MPI_Bcast");
        });
    });
  }

  // One MPI_Gatherv when the whole vector fits one message, else each range sent to the root in pieces.
  void gather(Tensor mine, Tensor all, std::span<const int64_t> offsets, int root) override {
    const CollectiveWait wait(world_rank_, "MPI_Gatherv");
    check_offsets(offsets);
    check_internal(root >= 0 && root < size_, "gather: no such root");
    check_internal(mine.contiguous() && mine.numel() == offsets[rank_ + 1] - offsets[rank_],
                   "gather: this rank's range expected");
    check_internal(rank_ != root || (all.device == Device::cpu && all.dtype == DType::f32 && all.contiguous() &&
                                     all.numel() >= offsets.back()),
                   "gather: the root receives into a flat host f32 tensor");
    std::vector<float> staged;
    const float* sent = mine.device == Device::cpu && mine.dtype == DType::f32
                            ? mine.ptr<float>()
                            : (staged = to_host_floats(mine)).data();
    float* received = all.ptr<float>();
    if (fits_one_message(offsets)) {
      const std::vector<int> counts = range_counts(offsets), displacements = range_displacements(offsets);
      check_mpi(MPI_Gatherv(sent, counts[rank_], MPI_FLOAT, rank_ == root ? received + offsets[0] : nullptr,
                            counts.data(), displacements.data(), MPI_FLOAT, root, comm_),
                "MPI_Gatherv");
      return;
    }
    constexpr int kTag = 0;
    for (int r = 0; r < size_; ++r) {
      if (rank_ != r && rank_ != root) continue;
      for_each_piece(offsets[r], offsets[r + 1], [&](int64_t begin, int count) {
        if (rank_ == r) {  // our own range: `sent` is only valid here (it may be null where our range is empty)
          const float* piece = sent + (begin - offsets[r]);
          if (r == root) {
            std::copy(piece, piece + count, received + begin);
          } else {
            check_mpi(MPI_Send(piece, count, MPI_FLOAT, root, kTag, comm_), "MPI_Send");
          }
        } else {
          check_mpi(MPI_Recv(received + begin, count, MPI_FLOAT, r, kTag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
        }
      });
    }
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

  // Calls piece(begin, count) for consecutive pieces of [begin, end) of at most count_limit_ elements.
  template <class F>
  void for_each_piece(int64_t begin, int64_t end, F&& piece) const {
    for (int64_t at = begin; at < end; at += count_limit_)
      piece(at, static_cast<int>(std::min(count_limit_, end - at)));
  }

  template <class T>
  void allreduce_pieces(T* data, int64_t n) const {
    const MPI_Datatype type = std::is_same_v<T, double> ? MPI_DOUBLE : MPI_FLOAT;
    for_each_piece(0, n, [&](int64_t begin, int count) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + begin, count, type, MPI_SUM, comm_), "MPI_Allreduce");
    });
  }

  void check_offsets(std::span<const int64_t> offsets) const {
    check_internal(static_cast<int>(offsets.size()) == size_ + 1, "sharded collective: one range per rank");
    for (int r = 0; r < size_; ++r)
      check_internal(offsets[r] <= offsets[r + 1], "sharded collective: ranges out of order");
  }

  // Whether every count and displacement of the ranges, taken from offsets[0], fits one MPI call.
  bool fits_one_message(std::span<const int64_t> offsets) const {
    return offsets.back() - offsets.front() <= count_limit_;
  }
  std::vector<int> range_counts(std::span<const int64_t> offsets) const {
    std::vector<int> counts(size_);
    for (int r = 0; r < size_; ++r) counts[r] = static_cast<int>(offsets[r + 1] - offsets[r]);
    return counts;
  }
  std::vector<int> range_displacements(std::span<const int64_t> offsets) const {
    std::vector<int> displacements(size_);
    for (int r = 0; r < size_; ++r) displacements[r] = static_cast<int>(offsets[r] - offsets[0]);
    return displacements;
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
  int64_t count_limit_;
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
    comm = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, local_rank, kMpiCountLimit);
  }
  ~MpiWorld() {
    comm.reset();
    MPI_Finalize();
  }
  std::unique_ptr<Communicator> comm;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm group, int local_rank, int64_t count_limit) {
  return std::make_unique<MpiCommunicator>(group, local_rank, count_limit);
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
