// The MPI communicator's collectives, run under mpiexec with three ranks (tests/CMakeLists registers it):
// sums of f32, f64 and bf16 tensors, reduce-scatter and all-gather over uneven and empty ranges, groups from
// split, the started forms, and the bucketed gradient reduction with ZeRO-1 ranges. Every expected value is
// written from the rank numbers, so each rank checks the others' contributions.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "parallel/communicator.h"
#include "parallel/gradient_reducer.h"

namespace ratplus {
namespace {

Tensor flat(std::vector<float>& v) {
  const auto n = static_cast<int64_t>(v.size());
  return Tensor{v.data(), 1, n, n, DType::f32, Device::cpu};
}

// Element i of rank r's contribution, and the sum over the ranks.
float value(int r, int64_t i) { return static_cast<float>((r + 1) * 100 + i); }
float sum_over_ranks(int ranks, int64_t i) {
  float s = 0;
  for (int r = 0; r < ranks; ++r) s += value(r, i);
  return s;
}

TEST(MpiCommunicator, RunsUnderMpiexecWithThreeRanks) { ASSERT_EQ(world().size(), 3); }

TEST(MpiCommunicator, AllreduceOfF32F64AndBf16) {
  Communicator& w = world();
  std::vector<float> f(7);
  for (int64_t i = 0; i < 7; ++i) f[i] = value(w.rank(), i);
  w.allreduce_sum(flat(f));
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(f[i], sum_over_ranks(3, i));

  std::vector<double> d = {w.rank() + 0.5, -1.0 * w.rank()};
  const Tensor dt{d.data(), 1, 2, 2, DType::f64, Device::cpu};
  w.allreduce_sum(dt);
  EXPECT_EQ(d[0], 4.5);
  EXPECT_EQ(d[1], -3.0);

  // bf16 is staged as f32 and rounded once: small integers stay exact.
  Buffer storage(5 * 2, Device::cpu);
  const Tensor b{storage.data(), 1, 5, 5, DType::bf16, Device::cpu};
  from_host_floats(b, {1.0f * w.rank(), 2.0f, -3.0f, 0.5f, 64.0f});
  w.allreduce_sum(b);
  EXPECT_EQ(to_host_floats(b), (std::vector<float>{3.0f, 6.0f, -9.0f, 1.5f, 192.0f}));
}

TEST(MpiCommunicator, ReduceScatterAndAllgatherOverUnevenAndEmptyRanges) {
  Communicator& w = world();
  const std::vector<int64_t> offsets = {0, 5, 5, 11};  // rank 1 owns nothing
  std::vector<float> v(11);
  for (int64_t i = 0; i < 11; ++i) v[i] = value(w.rank(), i);
  w.reduce_scatter_sum(flat(v), offsets);
  for (int64_t i = offsets[w.rank()]; i < offsets[w.rank() + 1]; ++i) EXPECT_EQ(v[i], sum_over_ranks(3, i));

  std::vector<float> g(11, -1.0f);
  for (int64_t i = offsets[w.rank()]; i < offsets[w.rank() + 1]; ++i) g[i] = value(w.rank(), i);
  w.allgather(flat(g), offsets);
  for (int64_t i = 0; i < 11; ++i) EXPECT_EQ(g[i], value(i < 5 ? 0 : 2, i));

  Buffer storage(11 * 2, Device::cpu);
  const Tensor b{storage.data(), 1, 11, 11, DType::bf16, Device::cpu};
  std::vector<float> mine(11, 0.0f);
  for (int64_t i = offsets[w.rank()]; i < offsets[w.rank() + 1]; ++i) mine[i] = static_cast<float>(i + 1);
  from_host_floats(b, mine);
  w.allgather(b, offsets);
  const std::vector<float> gathered = to_host_floats(b);
  for (int64_t i = 0; i < 11; ++i) EXPECT_EQ(gathered[i], static_cast<float>(i + 1));
}

TEST(MpiCommunicator, SplitGroupsByColorRankedByKey) {
  Communicator& w = world();
  // Ranks 0 and 2 form one group, ordered by descending world rank; rank 1 is alone.
  const std::unique_ptr<Communicator> group = w.split(w.rank() % 2, -w.rank(), Device::cpu);
  EXPECT_EQ(group->size(), w.rank() == 1 ? 1 : 2);
  EXPECT_EQ(group->rank(), w.rank() == 2 ? 0 : w.rank() == 0 ? 1 : 0);
  std::vector<double> r = {static_cast<double>(w.rank())};
  group->allreduce_sum(std::span<double>(r));
  EXPECT_EQ(r[0], w.rank() == 1 ? 1.0 : 2.0);
}

TEST(MpiCommunicator, BucketedReductionLeavesEachOwnerItsSums) {
  Communicator& w = world();
  const int64_t n = 23;
  const std::vector<int64_t> shards = {0, 8, 16, 23};
  for (const bool zero1 : {false, true}) {
    std::vector<float> grads(n);
    for (int64_t i = 0; i < n; ++i) grads[i] = value(w.rank(), i);
    GradientReducer reducer(w, flat(grads), zero1 ? shards : std::vector<int64_t>{}, 5);
    for (const int64_t offset : {20, 13, 4, 0}) reducer.ready(offset);  // as a backward pass would report
    reducer.finish();
    const int64_t begin = zero1 ? shards[w.rank()] : 0, end = zero1 ? shards[w.rank() + 1] : n;
    for (int64_t i = begin; i < end; ++i)
      EXPECT_EQ(grads[i], sum_over_ranks(3, i)) << "zero1 " << zero1 << " at " << i;
  }
}

}  // namespace
}  // namespace ratplus
