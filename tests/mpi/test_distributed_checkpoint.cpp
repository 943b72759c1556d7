// A training checkpoint saved by three MPI ranks (ZeRO-1 ranges of parameters and moments) over a world
// communicator whose messages hold at most 5 elements, so every gather of the save is split into pieces;
// each rank then loads its range again. The expected values are a formula of the group and the element.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/distributed_checkpoint.h"
#include "checkpoint/hdf5_file.h"
#include "parallel/mpi_communicator.h"

namespace ratplus {
namespace {

ModelConfig model() {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.d_ffn = 24;
  return c;
}

float value(int group, int64_t i) { return static_cast<float>(group * 100000 + i) * 0.5f; }

TEST(MpiDistributedCheckpoint, SavesThroughPiecesOfFiveElementsAndLoadsEachRange) {
  world();  // initialises MPI
  MPI_Comm copy;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &copy), "MPI_Comm_dup");
  const std::unique_ptr<Communicator> limited = make_mpi_communicator(copy, 0, 5);
  const int rank = limited->rank(), ranks = limited->size();

  // The path of rank 0's directory, on every rank.
  std::vector<char> directory(256, '\0');
  if (rank == 0) {
    const std::string name =
        std::filesystem::temp_directory_path() / ("ratplus_mpi_ckpt_" + std::to_string(::getpid()));
    ASSERT_LT(name.size(), directory.size());
    std::copy(name.begin(), name.end(), directory.begin());
    std::filesystem::create_directories(name);
  }
  check_mpi(MPI_Bcast(directory.data(), 256, MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast");
  const std::string path = std::string(directory.data()) + "/step.h5";

  const ModelConfig config = model();
  const ParameterTable table(config);
  const int64_t n = table.total_elements(), per_rank = (n + ranks - 1) / ranks;
  const Range owned{std::min(n, rank * per_rank), std::min(n, (rank + 1) * per_rank)};
  std::vector<std::vector<float>> mine(kTensorGroups);
  std::vector<HeldValues> held;
  for (int group = 0; group < kTensorGroups; ++group) {
    for (int64_t i = owned.begin; i < owned.end; ++i) mine[group].push_back(value(group, i));
    held.push_back({owned, Tensor{mine[group].data(), 1, owned.size(), owned.size(), DType::f32, Device::cpu}});
  }
  TrainingState state;
  state.step = 9;
  state.loader_positions = {9, 9, 9};
  save_distributed_checkpoint(path, config, state, table, held, *limited);

  if (rank == 0) {
    const Hdf5File file = Hdf5File::open_read_only(path);
    for (int group = 0; group < kTensorGroups; ++group)
      for (const ParameterInfo& p : table.entries()) {
        std::vector<float> stored(p.numel());
        file.read_floats(tensor_group_path(group) + "/" + p.name, stored.data(), p.numel());
        for (int64_t i = 0; i < p.numel(); ++i) ASSERT_EQ(stored[i], value(group, p.offset + i)) << p.name;
      }
  }
  std::vector<std::vector<float>> loaded(kTensorGroups, std::vector<float>(owned.size(), -1.0f));
  for (int group = 0; group < kTensorGroups; ++group)
    held[group].values.data = loaded[group].data();
  EXPECT_EQ(load_distributed_checkpoint(path, config, table, held).step, 9);
  EXPECT_EQ(loaded, mine);
  limited->barrier();
  if (rank == 0) std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

}  // namespace
}  // namespace ratplus
