// Checkpoints saved through rank 0 and loaded by each rank (checkpoint/distributed_checkpoint.h), with the
// ranks run as threads over an in-process communicator that records every gather. A small model goes round
// trip across layouts (tp 2 × dp 2 with ZeRO-1 ↔ tp 1 × dp 2 with ZeRO-1 ↔ tp 2 alone), compared bitwise
// with a single-process checkpoint of the same full tensors, whose hyperslab reads also give each rank its
// expected slices. The 7.6B model, too big to hold here, is checked through its gather plan: although its
// ranges run past 2^31 elements, every count and offset handed to a gather stays within one tensor.
#include <gtest/gtest.h>

#include <barrier>
#include <bit>
#include <climits>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "checkpoint/distributed_checkpoint.h"
#include "checkpoint/hdf5_file.h"
#include "checkpoint_test_util.h"
#include "core/buffer.h"
#include "core/config.h"
#include "core/temp_dir.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

// The offsets of every rank's gathers, in call order.
struct GatherLog {
  std::mutex mutex;
  std::vector<std::vector<std::vector<int64_t>>> calls;  // per rank
};

// Ranks as threads: each collective is a rendezvous of all of them (host tensors only).
class ThreadedCommunicator final : public Communicator {
 public:
  struct Shared {
    explicit Shared(int ranks) : sync(ranks), doubles(ranks), tensors(ranks), log() { log.calls.resize(ranks); }
    std::barrier<> sync;
    std::vector<std::span<double>> doubles;
    std::vector<Tensor> tensors;
    GatherLog log;
  };
  ThreadedCommunicator(std::shared_ptr<Shared> shared, int rank) : shared_(std::move(shared)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(shared_->tensors.size()); }
  int local_rank() const override { return rank_; }
  std::unique_ptr<Communicator> split(int, int, Device) override { throw std::logic_error("not used"); }
  void allreduce_sum(Tensor) override { throw std::logic_error("not used"); }
  void reduce_scatter_sum(Tensor, std::span<const int64_t>) override { throw std::logic_error("not used"); }
  void allgather(Tensor, std::span<const int64_t>) override { throw std::logic_error("not used"); }

  void allreduce_sum(std::span<double> values) override {
    shared_->doubles[rank_] = values;
    shared_->sync.arrive_and_wait();
    std::vector<double> sum(values.size(), 0.0);
    for (const std::span<double> theirs : shared_->doubles)
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += theirs[i];
    shared_->sync.arrive_and_wait();
    std::copy(sum.begin(), sum.end(), values.begin());
  }

  void gather(Tensor mine, Tensor all, std::span<const int64_t> offsets, int root) override {
    {
      const std::lock_guard lock(shared_->log.mutex);
      shared_->log.calls[rank_].emplace_back(offsets.begin(), offsets.end());
    }
    EXPECT_EQ(mine.numel(), offsets[rank_ + 1] - offsets[rank_]);
    shared_->tensors[rank_] = mine;
    shared_->sync.arrive_and_wait();
    if (rank_ == root)
      for (int r = 0; r < size(); ++r)
        from_host_floats(all.cols_slice(offsets[r], offsets[r + 1] - offsets[r]), to_host_floats(shared_->tensors[r]));
    shared_->sync.arrive_and_wait();
  }

  void barrier() override { shared_->sync.arrive_and_wait(); }

 private:
  std::shared_ptr<Shared> shared_;
  int rank_;
};

// What the ranks' threads ended with: each rank's exception (null when it returned) and gather offsets.
struct RankResults {
  std::vector<std::exception_ptr> errors;
  std::vector<std::vector<std::vector<int64_t>>> gathers;
};

// Runs body(rank, world) on `ranks` threads.
RankResults run_ranks(int ranks, const std::function<void(int, Communicator&)>& body) {
  const auto shared = std::make_shared<ThreadedCommunicator::Shared>(ranks);
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      ThreadedCommunicator world(shared, r);
      try {
        body(r, world);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  return {std::move(errors), std::move(shared->log.calls)};
}

// A model that splits over two tensor-parallel ranks.
ModelConfig model() {
  ModelConfig c = small_config(false);
  c.vocab_size = 38;
  return c;
}

// Rounds to the nearest value a bf16 holds exactly (by dropping mantissa bits), so a bf16 copy is lossless.
std::vector<float> bf16_exact(std::vector<float> values) {
  for (float& x : values) x = std::bit_cast<float>(std::bit_cast<uint32_t>(x) & 0xffff0000u);
  return values;
}

// Where a rank sits and what it holds; groups 0..2 are parameters, m and v.
struct Layout {
  int tp = 1, dp = 1;
  bool zero1_params = false, zero1_moments = false, bf16_params = false;

  int ranks() const { return tp * dp; }
  int tp_rank(int rank) const { return rank % tp; }  // ProcessGrid's numbering
  int dp_rank(int rank) const { return rank / tp; }
  Range held(int rank, int group, int64_t n) const {
    if (!(group == 0 ? zero1_params : zero1_moments)) return {0, n};
    const int64_t per_rank = (n + dp - 1) / dp, r = dp_rank(rank);
    return {std::min(n, r * per_rank), std::min(n, (r + 1) * per_rank)};
  }
};

class DistributedCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int group = 0; group < kTensorGroups; ++group) full_[group] = random_values(config_, 10 + group);
    full_[0] = bf16_exact(full_[0]);
    state_.step = 42;
    state_.tokens = 4242;
    state_.optimizer_updates = 40;
    state_.config_yaml = "model: {}\n";
    state_.loader_positions = {42, 42};
    state_.seed = 7;
    save_training_checkpoint(reference_, config_, [&](int group) { return full_[group]; }, state_);
  }

  // A rank's slice of every group in its table's layout, read from the single-process checkpoint.
  std::vector<std::vector<float>> expected_slices(const ParameterTable& slices) const {
    std::vector<std::vector<float>> local(kTensorGroups);
    load_training_checkpoint(reference_, config_, slices,
                             [&](int group, const std::vector<float>& values) { local[group] = values; });
    return local;
  }

  // What a rank of `layout` holds: its slice table and, per group, its range of the expected slices.
  struct RankState {
    ParameterTable slices;
    std::vector<std::vector<float>> kept;
    Buffer bf16_params;
    std::vector<HeldValues> held;
  };
  std::unique_ptr<RankState> rank_state(const Layout& layout, int rank) const {
    auto state = std::make_unique<RankState>(RankState{ParameterTable(config_, layout.tp_rank(rank), layout.tp), {}, {}, {}});
    const std::vector<std::vector<float>> local = expected_slices(state->slices);
    const int64_t n = state->slices.total_elements();
    state->bf16_params = Buffer(static_cast<size_t>(n) * 2, Device::cpu);
    state->kept.resize(kTensorGroups);
    for (int group = 0; group < kTensorGroups; ++group) {
      const Range range = layout.held(rank, group, n);
      std::vector<float>& kept = state->kept[group];
      kept.assign(local[group].begin() + range.begin, local[group].begin() + range.end);
      Tensor values{kept.data(), 1, range.size(), range.size(), DType::f32, Device::cpu};
      if (group == 0 && layout.bf16_params) {
        values = Tensor{state->bf16_params.data(), 1, range.size(), range.size(), DType::bf16, Device::cpu};
        from_host_floats(values, kept);
      }
      state->held.push_back({range, values});
    }
    return state;
  }

  // Saves from `layout`, the ranks on threads (their states read from the reference beforehand: HDF5 is
  // used by one thread at a time).
  RankResults save_on_threads(const Layout& layout, const std::string& path) const {
    std::vector<std::unique_ptr<RankState>> ranks;
    for (int rank = 0; rank < layout.ranks(); ++rank) ranks.push_back(rank_state(layout, rank));
    return run_ranks(layout.ranks(), [&](int rank, Communicator& world) {
      save_distributed_checkpoint(path, config_, state_, ranks[rank]->slices, ranks[rank]->held, world);
    });
  }

  // Saves from `layout`; returns each rank's gathers.
  std::vector<std::vector<std::vector<int64_t>>> save(const Layout& layout, const std::string& path) const {
    RankResults results = save_on_threads(layout, path);
    for (const std::exception_ptr& error : results.errors)
      if (error) std::rethrow_exception(error);
    return std::move(results.gathers);
  }

  // Loads `path` in `layout` on every rank and compares with the ranks' expected slices.
  void expect_loads(const Layout& layout, const std::string& path) const {
    for (int rank = 0; rank < layout.ranks(); ++rank) {
      const ParameterTable slices(config_, layout.tp_rank(rank), layout.tp);
      const std::vector<std::vector<float>> local = expected_slices(slices);
      std::vector<std::vector<float>> loaded(kTensorGroups);
      std::vector<HeldValues> held;
      for (int group = 0; group < kTensorGroups; ++group) {
        const Range range = layout.held(rank, group, slices.total_elements());
        loaded[group].assign(static_cast<size_t>(range.size()), -7.0f);
        held.push_back({range, Tensor{loaded[group].data(), 1, range.size(), range.size(), DType::f32, Device::cpu}});
      }
      const TrainingState state = load_distributed_checkpoint(path, config_, slices, held);
      EXPECT_EQ(state.step, state_.step);
      EXPECT_EQ(state.loader_positions, state_.loader_positions);
      for (int group = 0; group < kTensorGroups; ++group) {
        const Range range = held[group].range;
        EXPECT_TRUE(same_bits(loaded[group], {local[group].begin() + range.begin, local[group].begin() + range.end}))
            << "rank " << rank << " group " << group;
      }
    }
  }

  // The saved file holds exactly the full tensors and state of the reference.
  void expect_same_as_reference(const std::string& path) const {
    const Hdf5File file = Hdf5File::open_read_only(path);
    const ParameterTable table(config_);
    for (int group = 0; group < kTensorGroups; ++group)
      for (const ParameterInfo& p : table.entries()) {
        std::vector<float> stored(static_cast<size_t>(p.numel()));
        file.read_floats(tensor_group_path(group) + "/" + p.name, stored.data(), p.numel());
        EXPECT_TRUE(same_bits(stored, {full_[group].begin() + p.offset, full_[group].begin() + p.offset + p.numel()}))
            << tensor_group_path(group) << "/" << p.name;
      }
    const TrainingState state = read_training_state(file);
    EXPECT_EQ(state.tokens, state_.tokens);
    EXPECT_EQ(state.seed, state_.seed);
  }

  const TempDir dir_;
  const ModelConfig config_ = model();
  const std::string reference_ = dir_.file("reference.h5");
  std::vector<float> full_[kTensorGroups];
  TrainingState state_;
};

const Layout kTp2Dp2Zero1{2, 2, true, true, true};  // mixed precision: f32 master weights sharded, bf16 copy
const Layout kTp1Dp2Zero1{1, 2, false, true, false};
const Layout kTp2{2, 1, false, false, false};

TEST_F(DistributedCheckpointTest, SavesEachLayoutAsTheFullTensors) {
  for (const Layout& layout : {kTp2Dp2Zero1, kTp1Dp2Zero1, kTp2}) {
    const std::string path = dir_.file("step.h5");
    save(layout, path);
    expect_same_as_reference(path);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  }
}

TEST_F(DistributedCheckpointTest, LoadsAcrossLayouts) {
  for (const Layout& from : {kTp2Dp2Zero1, kTp1Dp2Zero1, kTp2}) {
    const std::string path = dir_.file("from.h5");
    save(from, path);
    for (const Layout& to : {kTp2Dp2Zero1, kTp1Dp2Zero1, kTp2}) expect_loads(to, path);
  }
}

TEST_F(DistributedCheckpointTest, GathersOneTensorAtATimeInTableOrder) {
  const std::vector<std::vector<std::vector<int64_t>>> calls = save(kTp2Dp2Zero1, dir_.file("step.h5"));
  const ParameterTable table(config_);
  for (const auto& rank_calls : calls) {
    ASSERT_EQ(rank_calls.size(), kTensorGroups * table.entries().size());
    for (size_t i = 0; i < rank_calls.size(); ++i)
      EXPECT_EQ(rank_calls[i].back(), table.entries()[i % table.entries().size()].numel()) << "gather " << i;
    EXPECT_EQ(rank_calls, calls[0]);  // every rank the same calls
  }
}

TEST_F(DistributedCheckpointTest, AFailedWriteEndsEveryRankAndLeavesNoFile) {
  const RankResults results = save_on_threads(kTp1Dp2Zero1, dir_.file("missing-directory/step.h5"));
  EXPECT_THROW(std::rethrow_exception(results.errors[0]), InputError);
  EXPECT_THROW(std::rethrow_exception(results.errors[1]), std::runtime_error);
  EXPECT_EQ(results.gathers[0], results.gathers[1]);  // rank 0 kept to the protocol after its failure
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"reference.h5"});
}

// The 7.6B model (2^31 < its elements) under ZeRO-1 over two data-parallel ranks, with and without tp = 2.
TEST(GatherPlanTest, SevenBillionParameterRangesGatherInTensorSizedCounts) {
  const ModelConfig big =
      load_experiment_config((std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "configs" /
                              "ratplus-7.6b.yaml")
                                 .string())
          .model;
  const int64_t total = ParameterTable(big).total_elements();
  ASSERT_GT(total, int64_t{INT_MAX});
  for (const Layout& layout : {kTp2Dp2Zero1, kTp1Dp2Zero1}) {
    std::vector<RankLayout> ranks;
    bool past_int_max = false;
    for (int r = 0; r < layout.ranks(); ++r) {
      const int64_t n = ParameterTable(big, layout.tp_rank(r), layout.tp).total_elements();
      RankLayout rank{layout.tp_rank(r), {}};
      for (int group = 0; group < kTensorGroups; ++group) {
        rank.held.push_back(layout.held(r, group, n));
        past_int_max |= rank.held.back().end > INT_MAX;
      }
      ranks.push_back(rank);
    }
    EXPECT_TRUE(past_int_max);  // the old whole-model gathers would have overflowed
    const GatherPlan plan(big, layout.tp, ranks);
    for (int group = 0; group < kTensorGroups; ++group) {
      int64_t sent = 0;
      for (int tensor = 0; tensor < static_cast<int>(plan.full().entries().size()); ++tensor) {
        const std::vector<int64_t> offsets = plan.offsets(group, tensor);
        EXPECT_EQ(offsets.back(), plan.full().entries()[tensor].numel());
        for (const int64_t offset : offsets) EXPECT_LE(offset, int64_t{INT_MAX});
        sent += offsets.back();
      }
      EXPECT_EQ(sent, total);  // every element of the model sent exactly once
    }
  }
}

}  // namespace
}  // namespace ratplus::test
