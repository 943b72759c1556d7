// The NCCL communicator: device tensors travel through NCCL, host values and tensors through MPI on the same
// group. Collectives run on a non-blocking stream of their own: each waits for an event recorded on the
// legacy default stream (where the kernels run), and the default stream waits for an event recorded after
// it, so nothing blocks the host. A watchdog thread follows those events and NCCL's asynchronous error: a
// failed collective, or one overdue by RATPLUS_COLLECTIVE_TIMEOUT (a dead or hung peer), aborts the
// communicator and ends the process with a message instead of hanging the job.
#include "parallel/mpi_communicator.h"
#include "parallel/collective_watchdog.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ratplus {

namespace {

using Clock = std::chrono::steady_clock;

constexpr cudaStream_t kComputeStream = nullptr;  // the legacy default stream of the kernels and cuBLASLt
constexpr auto kWatchInterval = std::chrono::milliseconds(200);
constexpr int kInitialEvents = 8;

ncclDataType_t nccl_type(DType dtype) {
  check_internal(dtype == DType::f32 || dtype == DType::bf16, "NCCL collective: f32 or bf16 tensors expected");
  return dtype == DType::f32 ? ncclFloat32 : ncclBfloat16;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm group, int local_rank)
      : mpi_(make_mpi_communicator(group, local_rank)), rank_(mpi_->rank()), size_(mpi_->size()),
        local_rank_(local_rank), timeout_(collective_timeout()) {
    check_cuda(cudaGetDevice(&device_), "cudaGetDevice");
    ncclUniqueId id{};
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    check_mpi(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, group), "MPI_Bcast of the NCCL id");
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check_cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    for (int i = 0; i < kInitialEvents; ++i) free_.push_back(new_event());
    watchdog_ = std::thread([this] { watch(); });  // last: nothing may throw once it runs
  }

  ~NcclCommunicator() override {
    // Still under the watchdog, so that a hung collective cannot hang the shutdown either.
    if (cudaError_t err = cudaStreamSynchronize(stream_); err != cudaSuccess)
      spdlog::warn("rank {}: cudaStreamSynchronize of the NCCL stream: {}", rank_, cudaGetErrorString(err));
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    watchdog_.join();
    if (ncclResult_t result = ncclCommDestroy(comm_); result != ncclSuccess)
      spdlog::warn("rank {}: ncclCommDestroy: {}", rank_, ncclGetErrorString(result));
    for (const Pending& op : pending_) cudaEventDestroy(op.done);
    for (cudaEvent_t event : free_) cudaEventDestroy(event);
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  std::unique_ptr<Communicator> split(int color, int key, Device device) override {
    return mpi_->split(color, key, device);  // splits the MPI group; NCCL again for device == cuda
  }

  void allreduce_sum(Tensor t) override {
    if (t.device == Device::cpu) return mpi_->allreduce_sum(t);
    join(enqueue_allreduce(t));
  }
  void allreduce_sum(std::span<double> values) override { mpi_->allreduce_sum(values); }

  void reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) override {
    if (t.device == Device::cpu) return mpi_->reduce_scatter_sum(t, offsets);
    join(enqueue_reduce_scatter(t, offsets));
  }

  void allgather(Tensor t, std::span<const int64_t> offsets) override {
    if (t.device == Device::cpu) return mpi_->allgather(t, offsets);
    check_internal(t.contiguous(), "allgather: flat tensor expected");
    check_offsets(t, offsets);
    const ncclDataType_t type = nccl_type(t.dtype);
    char* data = static_cast<char*>(t.data);
    const size_t element = dtype_size(t.dtype);
    join(enqueue("allgather", [&] {
      if (const size_t count = equal_range(offsets))
        return check_nccl(ncclAllGather(data + offsets[rank_] * element, data, count, type, comm_, stream_),
                          "ncclAllGather");
      check_nccl(ncclGroupStart(), "ncclGroupStart");
      for (int r = 0; r < size_; ++r) {
        char* range = data + offsets[r] * element;
        if (offsets[r + 1] > offsets[r])
          check_nccl(ncclBroadcast(range, range, offsets[r + 1] - offsets[r], type, r, comm_, stream_),
                     "ncclBroadcast");
      }
      check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    }));
  }

  // Checkpoint traffic goes through host memory: MPI stages device values (ordered after the queued work).
  void gather(Tensor mine, Tensor all, std::span<const int64_t> offsets, int root) override {
    mpi_->gather(mine, all, offsets, root);
  }

  void start_allreduce_sum(Tensor t) override {
    if (t.device == Device::cpu) return mpi_->allreduce_sum(t);
    enqueue_allreduce(t);
  }
  void start_reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) override {
    if (t.device == Device::cpu) return mpi_->reduce_scatter_sum(t, offsets);
    enqueue_reduce_scatter(t, offsets);
  }
  void finish_started() override { join(enqueue("finish_started", [] {})); }

  void barrier() override { mpi_->barrier(); }

 private:
  struct Pending {
    const char* what;
    Clock::time_point since;  // when the host started enqueueing it
    cudaEvent_t done;         // recorded on the stream after it
  };

  cudaEvent_t enqueue_allreduce(Tensor t) {
    check_internal(t.contiguous(), "allreduce_sum: contiguous tensor expected");
    const ncclDataType_t type = nccl_type(t.dtype);
    return enqueue("allreduce_sum", [&] {
      if (t.numel() > 0)
        check_nccl(ncclAllReduce(t.data, t.data, t.numel(), type, ncclSum, comm_, stream_), "ncclAllReduce");
    });
  }

  cudaEvent_t enqueue_reduce_scatter(Tensor t, std::span<const int64_t> offsets) {
    float* data = flat_data(t, offsets);
    return enqueue("reduce_scatter_sum", [&] {
      if (const size_t count = equal_range(offsets))
        return check_nccl(ncclReduceScatter(data, data + offsets[rank_], count, ncclFloat32, ncclSum, comm_, stream_),
                          "ncclReduceScatter");
      check_nccl(ncclGroupStart(), "ncclGroupStart");
      for (int r = 0; r < size_; ++r) {
        float* range = data + offsets[r];
        if (offsets[r + 1] > offsets[r])
          check_nccl(ncclReduce(range, range, offsets[r + 1] - offsets[r], ncclFloat32, ncclSum, r, comm_, stream_),
                     "ncclReduce");
      }
      check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  float* flat_data(const Tensor& t, std::span<const int64_t> offsets) const {
    check_internal(t.dtype == DType::f32 && t.contiguous(), "sharded collective: flat f32 tensor expected");
    check_offsets(t, offsets);
    return t.ptr<float>();
  }

  void check_offsets(const Tensor& t, std::span<const int64_t> offsets) const {
    check_internal(static_cast<int>(offsets.size()) == size_ + 1 && offsets.front() == 0 && offsets.back() <= t.numel(),
                   "sharded collective: one range per rank within the tensor");
    for (int r = 0; r < size_; ++r)
      check_internal(offsets[r] <= offsets[r + 1], "sharded collective: ranges out of order");
  }

  // The common length of the ranges when all are equal and non-empty (NCCL's own in-place reduce-scatter
  // and all-gather then apply), else 0.
  size_t equal_range(std::span<const int64_t> offsets) const {
    const int64_t count = offsets[1] - offsets[0];
    for (int r = 0; r < size_; ++r)
      if (offsets[r + 1] - offsets[r] != count) return 0;
    return static_cast<size_t>(count);
  }

  // Runs nccl_calls on the NCCL stream after the work queued so far on the compute stream, and hands the
  // watchdog the event recorded after them, which is returned.
  template <class F>
  cudaEvent_t enqueue(const char* what, F&& nccl_calls) {
    check_cuda(cudaEventRecord(ready_, kComputeStream), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
    const Clock::time_point since = Clock::now();
    std::unique_lock lock(mutex_);
    in_call_ = Pending{what, since, nullptr};  // NCCL may block the host while it connects to peers
    lock.unlock();
    try {
      nccl_calls();
    } catch (...) {
      std::lock_guard relock(mutex_);
      in_call_.reset();
      throw;
    }
    lock.lock();
    in_call_.reset();
    cudaEvent_t done;
    if (free_.empty()) {
      done = new_event();
    } else {
      done = free_.back();
      free_.pop_back();
    }
    check_cuda(cudaEventRecord(done, stream_), "cudaEventRecord");
    pending_.push_back({what, since, done});
    return done;
  }

  // Device work queued from now on the compute stream runs after everything enqueued through `done`.
  void join(cudaEvent_t done) { check_cuda(cudaStreamWaitEvent(kComputeStream, done, 0), "cudaStreamWaitEvent"); }

  cudaEvent_t new_event() const {
    cudaEvent_t event;
    check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    return event;
  }

  void watch() {
    if (cudaError_t err = cudaSetDevice(device_); err != cudaSuccess)
      spdlog::warn("rank {}: NCCL watchdog: cudaSetDevice: {}", rank_, cudaGetErrorString(err));
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, kWatchInterval, [this] { return stopping_; })) {
      while (!pending_.empty() && cudaEventQuery(pending_.front().done) != cudaErrorNotReady) {
        free_.push_back(pending_.front().done);
        pending_.pop_front();
      }
      const std::optional<Pending> oldest = pending_.empty() ? in_call_ : std::optional<Pending>(pending_.front());
      lock.unlock();
      const Seconds waited = oldest ? Clock::now() - oldest->since : Seconds(0);
      const std::string waiting =
          oldest ? fmt::format("{} waiting for {:.0f} s", oldest->what, waited.count()) : "no collective waiting";
      ncclResult_t error = ncclSuccess;
      if (ncclResult_t result = ncclCommGetAsyncError(comm_, &error); result != ncclSuccess) error = result;
      if (error != ncclSuccess && error != ncclInProgress)
        abort_job(fmt::format("error: {} ({}); {}", ncclGetErrorString(error), ncclGetLastError(comm_), waiting));
      if (waited > timeout_)
        abort_job(fmt::format("timeout: {} (limit {} s, RATPLUS_COLLECTIVE_TIMEOUT)", waiting, timeout_.count()));
      lock.lock();
    }
  }

  // Ends the process: the main thread may be blocked behind the failed collective. The abort gets a few
  // seconds to free the device, in case it blocks as well.
  [[noreturn]] void abort_job(const std::string& problem) {
    auto aborted = std::async(std::launch::async, [comm = comm_] { ncclCommAbort(comm); });
    aborted.wait_for(std::chrono::seconds(10));
    abort_collective(rank_, "NCCL " + problem);
  }

  void check_cuda(cudaError_t err, const char* what) const {
    if (err != cudaSuccess)
      throw std::runtime_error(fmt::format("rank {}: {}: {}", rank_, what, cudaGetErrorString(err)));
  }
  void check_nccl(ncclResult_t result, const char* what) const {
    if (result != ncclSuccess)
      throw std::runtime_error(
          fmt::format("rank {}: {}: {} ({})", rank_, what, ncclGetErrorString(result), ncclGetLastError(comm_)));
  }

  std::unique_ptr<Communicator> mpi_;  // owns the MPI group: destroyed after the NCCL communicator
  int rank_, size_, local_rank_, device_ = 0;
  Seconds timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // the compute stream's progress, re-recorded before each collective

  std::mutex mutex_;  // guards what follows, shared with the watchdog
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<Pending> in_call_;  // a collective the host is still enqueueing
  std::deque<Pending> pending_;     // enqueued collectives not yet seen complete, oldest first
  std::vector<cudaEvent_t> free_;   // events of completed collectives, for reuse
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm group, int local_rank) {
  return std::make_unique<NcclCommunicator>(group, local_rank);
}

}  // namespace ratplus
