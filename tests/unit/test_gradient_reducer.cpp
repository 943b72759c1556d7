// The bucketed gradient reduction against a communicator that records what it is asked to do: which ranges
// start when the backward reports gradients final, in which order, with which ZeRO-1 ranges, and that
// finish() starts the rest and then waits.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "parallel/gradient_reducer.h"

namespace ratplus {
namespace {

// Records started sums as "begin+length" (all-reduce) or "begin+length:o0,o1,…" (reduce-scatter offsets).
class RecordingCommunicator final : public Communicator {
 public:
  explicit RecordingCommunicator(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  int local_rank() const override { return 0; }
  std::unique_ptr<Communicator> split(int, int, Device) override { return nullptr; }
  void allreduce_sum(Tensor) override { log.push_back("sync allreduce"); }
  void allreduce_sum(std::span<double>) override {}
  void reduce_scatter_sum(Tensor, std::span<const int64_t>) override { log.push_back("sync reduce_scatter"); }
  void allgather(Tensor, std::span<const int64_t>) override {}
  void gather(Tensor, Tensor, std::span<const int64_t>, int) override {}
  void start_allreduce_sum(Tensor t) override { log.push_back(range(t)); }
  void start_reduce_scatter_sum(Tensor t, std::span<const int64_t> offsets) override {
    std::string text = range(t) + ":";
    for (size_t i = 0; i < offsets.size(); ++i) {
      if (i > 0) text += ',';
      text += std::to_string(offsets[i]);
    }
    log.push_back(text);
  }
  void finish_started() override { log.push_back("finish"); }
  void barrier() override {}

  std::vector<std::string> log;
  const float* base = nullptr;

 private:
  std::string range(const Tensor& t) const {
    return std::to_string(static_cast<const float*>(t.data) - base) + "+" + std::to_string(t.numel());
  }
  int size_;
};

struct Fixture {
  std::vector<float> grads = std::vector<float>(10);
  Tensor flat{grads.data(), 1, 10, 10, DType::f32, Device::cpu};
};

TEST(GradientReducer, StartsWholeBucketsFromTheEndAsGradientsBecomeFinal) {
  Fixture f;
  RecordingCommunicator dp(2);
  dp.base = f.grads.data();
  GradientReducer reducer(dp, f.flat, {}, 4);  // buckets [6, 10), [2, 6), then the rest [0, 2)
  reducer.ready(7);
  EXPECT_TRUE(dp.log.empty());  // [6, 10) is not all final yet
  reducer.ready(6);
  EXPECT_EQ(dp.log, std::vector<std::string>({"6+4"}));
  reducer.ready(1);
  EXPECT_EQ(dp.log, std::vector<std::string>({"6+4", "2+4"}));
  reducer.ready(0);
  reducer.finish();
  EXPECT_EQ(dp.log, std::vector<std::string>({"6+4", "2+4", "0+2", "finish"}));
}

TEST(GradientReducer, ZeroOneClipsEachRanksRangeToTheBucket) {
  Fixture f;
  RecordingCommunicator dp(2);
  dp.base = f.grads.data();
  GradientReducer reducer(dp, f.flat, {0, 5, 10}, 4);  // rank 0 owns [0, 5), rank 1 [5, 10)
  reducer.ready(0);
  reducer.finish();
  EXPECT_EQ(dp.log, std::vector<std::string>({"6+4:0,0,4", "2+4:0,3,4", "0+2:0,2,2", "finish"}));
}

TEST(GradientReducer, OneRankReducesNothing) {
  Fixture f;
  RecordingCommunicator dp(1);
  GradientReducer reducer(dp, f.flat, {}, 4);
  reducer.ready(0);
  reducer.finish();
  EXPECT_TRUE(dp.log.empty());
}

}  // namespace
}  // namespace ratplus
