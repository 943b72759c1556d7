// Gathering into rank 0's snapshot and saving by the protocol of distributed_checkpoint.h, and loading what a
// rank holds.
#include "checkpoint/distributed_checkpoint.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>

#include "checkpoint/model_checkpoint.h"
#include "core/buffer.h"
#include "core/error.h"

namespace ratplus {
namespace {

constexpr int kRoot = 0;

void check_held(const ParameterTable& slices, const std::vector<HeldValues>& held) {
  check_internal(static_cast<int>(held.size()) == kTensorGroups, "checkpoint: one held range per tensor group");
  for (const HeldValues& h : held)
    check_internal(h.range.begin >= 0 && h.range.begin <= h.range.end && h.range.end <= slices.total_elements() &&
                       h.values.contiguous() && h.values.numel() == h.range.size(),
                   "checkpoint: held values must match their range of the slice table");
}

// Step 1 of the protocol: every rank's tensor-parallel rank and held ranges, exchanged exactly (as doubles,
// which hold integers up to 2^53).
GatherPlan exchange_layouts(Communicator& world, const ModelConfig& model, const ParameterTable& slices,
                            const std::vector<HeldValues>& held) {
  constexpr int kNumbers = 1 + 2 * kTensorGroups;
  std::vector<double> numbers(static_cast<size_t>(world.size()) * kNumbers, 0.0);
  double* mine = numbers.data() + static_cast<size_t>(world.rank()) * kNumbers;
  mine[0] = slices.tp_rank();
  for (int group = 0; group < kTensorGroups; ++group) {
    mine[1 + 2 * group] = static_cast<double>(held[group].range.begin);
    mine[2 + 2 * group] = static_cast<double>(held[group].range.end);
  }
  world.allreduce_sum(std::span<double>(numbers));
  std::vector<RankLayout> layouts(world.size());
  for (int r = 0; r < world.size(); ++r) {
    const double* theirs = numbers.data() + static_cast<size_t>(r) * kNumbers;
    layouts[r].tp_rank = static_cast<int>(theirs[0]);
    for (int group = 0; group < kTensorGroups; ++group)
      layouts[r].held.push_back(
          {static_cast<int64_t>(theirs[1 + 2 * group]), static_cast<int64_t>(theirs[2 + 2 * group])});
  }
  return GatherPlan(model, slices.tp_size(), std::move(layouts));
}

}  // namespace

CheckpointSnapshot::CheckpointSnapshot(const ModelConfig& model, Device peer)
    : model_(model),
      table_(model),
      buffer_(Buffer::host_staging(sizeof(float) * kTensorGroups * static_cast<size_t>(table_.total_elements()),
                                   peer)) {}

void gather_checkpoint(const ModelConfig& model, const ParameterTable& slices, const std::vector<HeldValues>& held,
                       Communicator& world, CheckpointSnapshot* snapshot) {
  check_held(slices, held);
  const bool root = world.rank() == kRoot;
  check_internal(root == (snapshot != nullptr), "gather_checkpoint: rank 0, and only rank 0, has a snapshot");
  const GatherPlan plan = exchange_layouts(world, model, slices, held);
  std::vector<float> parts;  // rank 0, when the plan does not gather in place
  for (int group = 0; group < kTensorGroups; ++group) {
    const HeldValues& mine = held[group];
    for (int tensor = 0; tensor < static_cast<int>(plan.full().entries().size()); ++tensor) {
      const ParameterInfo& whole = plan.full().entries()[tensor];
      const Range part = plan.part(group, tensor, world.rank());
      const Tensor sent = mine.values.cols_slice(part.size() > 0 ? part.begin - mine.range.begin : 0, part.size());
      float* full = root ? snapshot->group(group) + whole.offset : nullptr;
      const bool in_place = plan.gathers_in_place(group, tensor);
      if (root && !in_place) parts.resize(static_cast<size_t>(whole.numel()));
      const Tensor received{in_place ? full : parts.data(), 1, whole.numel(), whole.numel(), DType::f32, Device::cpu};
      world.gather(sent, root ? received : Tensor{}, plan.offsets(group, tensor), kRoot);
      if (root && !in_place) place_parts(plan, group, tensor, parts.data(), full);
    }
  }
}

void write_checkpoint_snapshot(const std::string& path, const CheckpointSnapshot& snapshot, const TrainingState& state) {
  TrainingCheckpointWriter writer(path, snapshot.model());
  for (int group = 0; group < kTensorGroups; ++group)
    for (const ParameterInfo& p : snapshot.table().entries()) writer.write(group, p, snapshot.group(group) + p.offset);
  writer.commit(state);
}

void save_distributed_checkpoint(const std::string& path, const ModelConfig& model, const TrainingState& state,
                                 const ParameterTable& slices, const std::vector<HeldValues>& held,
                                 Communicator& world) {
  std::optional<CheckpointSnapshot> snapshot;
  if (world.rank() == kRoot) snapshot.emplace(model, held[0].values.device);
  gather_checkpoint(model, slices, held, world, snapshot ? &*snapshot : nullptr);
  std::exception_ptr failure;
  if (snapshot) {
    try {
      write_checkpoint_snapshot(path, *snapshot, state);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  double failed = failure ? 1.0 : 0.0;
  world.allreduce_sum(std::span<double>(&failed, 1));
  if (failure) std::rethrow_exception(failure);
  if (failed > 0) throw std::runtime_error(path + ": the checkpoint could not be written (see rank 0's error)");
}

TrainingState load_distributed_checkpoint(const std::string& path, const ModelConfig& model,
                                          const ParameterTable& slices, const std::vector<HeldValues>& held) {
  check_held(slices, held);
  const Hdf5File file = open_training_checkpoint(path, model);
  const TrainingState state = read_training_state(file);
  std::vector<float> slice_values;
  for (int group = 0; group < kTensorGroups; ++group) {
    const HeldValues& mine = held[group];
    for (const ParameterInfo& slice : slices.entries()) {
      const int64_t begin = std::max(mine.range.begin, slice.offset);
      const int64_t end = std::min(mine.range.end, slice.offset + slice.numel());
      if (begin >= end) continue;
      const bool whole_slice = begin == slice.offset && end == slice.offset + slice.numel();
      if (whole_slice && mine.values.device == Device::cpu && mine.values.dtype == DType::f32) {
        read_parameter(file, tensor_group_path(group), slice, mine.values.ptr<float>() + (begin - mine.range.begin));
        continue;  // read straight into place
      }
      slice_values.resize(static_cast<size_t>(slice.numel()));
      read_parameter(file, tensor_group_path(group), slice, slice_values.data());
      from_host_floats(mine.values.cols_slice(begin - mine.range.begin, end - begin),
                       {slice_values.begin() + (begin - slice.offset), slice_values.begin() + (end - slice.offset)});
    }
  }
  return state;
}

}  // namespace ratplus
