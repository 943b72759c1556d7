// Training checkpoints (SPEC §7): the /model group of an inference checkpoint plus the AdamW moments
// /optim/m and /optim/v (same names and shapes) and the /train attributes that a bitwise-identical resume
// needs; and the step-numbered checkpoint files of a run's checkpoint directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/hdf5_file.h"
#include "core/atomic_file.h"
#include "core/model_config.h"
#include "model/parameters.h"

namespace ratplus {

struct TrainingState {
  int64_t step = 0;                       // batches completed = index of the next batch
  int64_t tokens = 0;                     // training tokens seen
  int64_t optimizer_updates = 0;          // AdamW update counter t
  int64_t skipped_updates = 0;            // updates skipped for non-finite loss or gradients
  std::string config_yaml;                // the full resolved experiment config
  std::vector<int64_t> loader_positions;  // next batch index of each data-parallel rank's loader
  uint64_t seed = 0;                      // train.seed (all randomness of a run derives from it and the step)
};

// The tensor groups of a training checkpoint: 0 = /model, 1 = /optim/m, 2 = /optim/v.
constexpr int kTensorGroups = 3;
const std::string& tensor_group_path(int group);

// Writes a training checkpoint one full tensor at a time through an AtomicFile: the constructor creates the
// temporary file and its groups, write() adds a tensor, commit() adds the /train attributes and moves the
// file into place. A writer destroyed uncommitted (after a failure) leaves no file behind.
class TrainingCheckpointWriter {
 public:
  TrainingCheckpointWriter(const std::string& path, const ModelConfig& model);
  // The full values of entry `full` of ParameterTable(model) in tensor group `group`.
  void write(int group, const ParameterInfo& full, const float* values);
  void commit(const TrainingState& state);

 private:
  AtomicFile out_;
  Hdf5File file_;
};

// The tensor groups of a training checkpoint travel one at a time — 0 = /model (parameters), 1 = /optim/m,
// 2 = /optim/v, in that order — as flat arrays (written: of the whole model, laid out by
// ParameterTable(model); read: laid out by the table given), so only one of them needs to be in memory at once.
using CheckpointValues = std::function<std::vector<float>(int group)>;
using CheckpointSink = std::function<void(int group, const std::vector<float>& values)>;

// Writes /model, /optim/m, /optim/v (same names and shapes as /model) and /train attributes (step, tokens,
// optimizer_updates, skipped_updates, config (YAML text), loader_positions (int64 array attribute),
// seed (uint64), format_version = 1) atomically (temporary name, fsync, rename).
void save_training_checkpoint(const std::string& path, const ModelConfig& model, const CheckpointValues& values,
                              const TrainingState& state);
// Reads all of it back; InputError naming the file (and dataset/attribute) when it is not a training
// checkpoint (no /optim or /train), is damaged (as load_model_parameters defines it, in any of the three
// groups; or, in a file named by checkpoint_file_name, a /train@step other than the name's), truncated, or
// does not match `model` (a dataset's shape, or a key of /model@config other than init_std). The layout and
// the state are checked before any data is read; after a failed read, groups already handed to `take` stay
// taken.
// The groups reach `take` laid out by `slices` (ParameterTable(model) for the whole model, or a tensor-parallel
// rank's slices, of which only that part of the file is read).
TrainingState load_training_checkpoint(const std::string& path, const ModelConfig& model, const ParameterTable& slices,
                                       const CheckpointSink& take);
// Opens a training checkpoint and checks it as load_training_checkpoint does, before any tensor data is read.
Hdf5File open_training_checkpoint(const std::string& path, const ModelConfig& model);
// The /train attributes of an open file, without reading any tensor data (InputError as above; a step that
// contradicts the file name among them).
TrainingState read_training_state(const Hdf5File& file);

// "step_00000100.h5" (8 digits, more if needed)
std::string checkpoint_file_name(int64_t step);
// Checkpoint files of a directory as paths `dir/name` (names made by checkpoint_file_name; temporaries and
// other files are ignored), newest (highest step) first; an absent directory has none.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Deletes all but the newest `keep` checkpoints of the directory.
void prune_checkpoints(const std::string& dir, int64_t keep);

}  // namespace ratplus
