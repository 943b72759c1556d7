// The MPI communicator with its count limit lowered to a few elements, under mpiexec with three ranks: every
// collective then sends its messages in pieces (and the sharded ones switch from one MPI call over all
// ranges to one per range), so the piece boundaries carry real data. Expected values come from the rank
// numbers, as in test_communicator.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/buffer.h"
#include "parallel/mpi_communicator.h"

namespace ratplus {
namespace {

constexpr int kRanks = 3;

Tensor flat(std::vector<float>& v) {
  const auto n = static_cast<int64_t>(v.size());
  return Tensor{v.data(), 1, n, n, DType::f32, Device::cpu};
}

float value(int r, int64_t i) { return static_cast<float>((r + 1) * 1000 + i); }
float sum_over_ranks(int64_t i) {
  float s = 0;
  for (int r = 0; r < kRanks; ++r) s += value(r, i);
  return s;
}

// A communicator over all ranks whose messages hold at most `limit` elements.
std::unique_ptr<Communicator> limited(int64_t limit) {
  world();  // initialises MPI
  MPI_Comm copy;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &copy), "MPI_Comm_dup");
  return make_mpi_communicator(copy, 0, limit);
}

// Uneven ranges, one of them empty, over 23 elements: [0, 9), [9, 9), [9, 23).
const std::vector<int64_t> kOffsets = {0, 9, 9, 23};

TEST(MpiMessagePieces, AllreduceInPiecesOfFourElements) {
  const std::unique_ptr<Communicator> c = limited(4);
  std::vector<float> f(23);
  for (int64_t i = 0; i < 23; ++i) f[i] = value(c->rank(), i);
  c->allreduce_sum(flat(f));
  for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(f[i], sum_over_ranks(i)) << i;

  std::vector<double> d(10);
  for (int64_t i = 0; i < 10; ++i) d[i] = c->rank() * 10.0 + i;
  c->allreduce_sum(std::span<double>(d));
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(d[i], 30.0 + 3 * i) << i;

  Buffer storage(9 * 2, Device::cpu);
  const Tensor b{storage.data(), 1, 9, 9, DType::bf16, Device::cpu};
  std::vector<float> mine(9);
  for (int64_t i = 0; i < 9; ++i) mine[i] = static_cast<float>(c->rank() + i);
  from_host_floats(b, mine);
  c->allreduce_sum(b);
  const std::vector<float> summed = to_host_floats(b);
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(summed[i], static_cast<float>(3 + 3 * i)) << i;
}

TEST(MpiMessagePieces, ShardedCollectivesInPiecesAndInOneCall) {
  for (const int64_t limit : {int64_t{4}, int64_t{23}}) {  // 23: all ranges fit one call
    const std::unique_ptr<Communicator> c = limited(limit);
    const int r = c->rank();
    std::vector<float> v(23);
    for (int64_t i = 0; i < 23; ++i) v[i] = value(r, i);
    c->reduce_scatter_sum(flat(v), kOffsets);
    for (int64_t i = kOffsets[r]; i < kOffsets[r + 1]; ++i) EXPECT_EQ(v[i], sum_over_ranks(i)) << limit << " " << i;

    std::vector<float> g(23, -1.0f);
    for (int64_t i = kOffsets[r]; i < kOffsets[r + 1]; ++i) g[i] = value(r, i);
    c->allgather(flat(g), kOffsets);
    for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(g[i], value(i < 9 ? 0 : 2, i)) << limit << " " << i;
  }
}

TEST(MpiMessagePieces, GatherToEachRootInPiecesAndInOneCall) {
  for (const int64_t limit : {int64_t{4}, int64_t{23}}) {
    const std::unique_ptr<Communicator> c = limited(limit);
    const int r = c->rank();
    for (int root = 0; root < kRanks; ++root) {
      std::vector<float> mine;
      for (int64_t i = kOffsets[r]; i < kOffsets[r + 1]; ++i) mine.push_back(value(r, i));
      std::vector<float> all(r == root ? 23 : 0, -1.0f);
      c->gather(flat(mine), flat(all), kOffsets, root);
      if (r != root) continue;
      for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(all[i], value(i < 9 ? 0 : 2, i)) << limit << " " << i;
    }
  }
}

TEST(MpiMessagePieces, GatherStagesBf16ValuesThroughTheHost) {
  const std::unique_ptr<Communicator> c = limited(4);
  const int r = c->rank();
  const int64_t n = kOffsets[r + 1] - kOffsets[r];
  Buffer storage(static_cast<size_t>(n) * 2 + 2, Device::cpu);
  const Tensor mine{storage.data(), 1, n, n, DType::bf16, Device::cpu};
  std::vector<float> values;
  for (int64_t i = kOffsets[r]; i < kOffsets[r + 1]; ++i) values.push_back(static_cast<float>(i));
  from_host_floats(mine, values);
  std::vector<float> all(23, -1.0f);
  c->gather(mine, flat(all), kOffsets, 0);
  if (r != 0) return;
  for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(all[i], static_cast<float>(i)) << i;
}

TEST(MpiMessagePieces, SplitGroupsKeepTheLimit) {
  const std::unique_ptr<Communicator> c = limited(2);
  const std::unique_ptr<Communicator> group = c->split(c->rank() == 1, c->rank(), Device::cpu);
  std::vector<float> v(7);
  for (int64_t i = 0; i < 7; ++i) v[i] = value(c->rank(), i);
  group->allreduce_sum(flat(v));
  for (int64_t i = 0; i < 7; ++i)
    EXPECT_EQ(v[i], c->rank() == 1 ? value(1, i) : value(0, i) + value(2, i)) << i;
}

}  // namespace
}  // namespace ratplus
