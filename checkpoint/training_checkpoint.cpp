// Training checkpoints: writing and strictly checked reading of /model, /optim/m, /optim/v and the /train
// attributes, and the step_NNNNNNNN.h5 files of a checkpoint directory (listing, pruning).
#include "checkpoint/training_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <string_view>
#include <utility>

#include "checkpoint/model_checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "model/parameters.h"

namespace ratplus {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFormatVersion = 1;
const std::string kModelGroup = "/model";
const std::string kOptimGroup = "/optim";
const std::string kFirstMomentGroup = "/optim/m";
const std::string kSecondMomentGroup = "/optim/v";
const std::string kTrainGroup = "/train";
constexpr std::string_view kFilePrefix = "step_";
constexpr std::string_view kFileSuffix = ".h5";

std::string not_training_checkpoint(const Hdf5File& file, const std::string& group) {
  return file.path() + ": no " + group + " group: not a training checkpoint (an inference checkpoint holds only " +
         kModelGroup + ")";
}

void write_train_group(Hdf5File& file, const TrainingState& state) {
  file.create_group(kTrainGroup);
  file.write_int64_attribute(kTrainGroup, "format_version", kFormatVersion);
  file.write_int64_attribute(kTrainGroup, "step", state.step);
  file.write_int64_attribute(kTrainGroup, "tokens", state.tokens);
  file.write_int64_attribute(kTrainGroup, "optimizer_updates", state.optimizer_updates);
  file.write_int64_attribute(kTrainGroup, "skipped_updates", state.skipped_updates);
  file.write_string_attribute(kTrainGroup, "config", state.config_yaml);
  file.write_int64_array_attribute(kTrainGroup, "loader_positions", state.loader_positions);
  file.write_uint64_attribute(kTrainGroup, "seed", state.seed);
}

bool has_non_negative_counts(const TrainingState& state) {
  const auto& positions = state.loader_positions;
  return state.step >= 0 && state.tokens >= 0 && state.optimizer_updates >= 0 && state.skipped_updates >= 0 &&
         std::all_of(positions.begin(), positions.end(), [](int64_t p) { return p >= 0; });
}

// A /train attribute that counts something, so cannot be negative.
int64_t read_count(const Hdf5File& file, const std::string& name) {
  const int64_t value = file.read_int64_attribute(kTrainGroup, name);
  require_input(value >= 0, fmt::format("{}: {}@{}: negative count {}", file.path(), kTrainGroup, name, value));
  return value;
}

void require_supported_version(const Hdf5File& file) {
  const int64_t version = file.read_int64_attribute(kTrainGroup, "format_version");
  require_input(version == kFormatVersion,
                fmt::format("{}: {}@format_version: version {} is not supported (this program reads version {})",
                            file.path(), kTrainGroup, version, kFormatVersion));
}

// The model config stored in /model@config must be `model` (init_std aside: it does not shape a trained model).
void require_same_model(const Hdf5File& file, const ModelConfig& model) {
  std::string differences;
  for (const ConfigDifference& d : model_shape_differences(read_model_group_config(file), model))
    differences += fmt::format("{}{}: {} in the file, {} expected", differences.empty() ? "" : "; ", d.key, d.first,
                               d.second);
  require_input(differences.empty(), fmt::format("{}: {}@config: the checkpoint's model differs: {}", file.path(),
                                                 kModelGroup, differences));
}

// The step of a file name made by checkpoint_file_name, or -1 for any other name.
int64_t step_of_file_name(const std::string& name) {
  if (!name.starts_with(kFilePrefix) || !name.ends_with(kFileSuffix)) return -1;
  const char* first = name.data() + kFilePrefix.size();
  const char* last = name.data() + name.size() - kFileSuffix.size();
  int64_t step = -1;
  const auto [end, error] = std::from_chars(first, last, step);
  if (error != std::errc() || end != last || step < 0) return -1;
  return checkpoint_file_name(step) == name ? step : -1;
}

// A file named by checkpoint_file_name holds the step its name says: the trainer picks the newest checkpoint
// by name and continues from the step inside.
void require_step_of_file_name(const Hdf5File& file, int64_t step) {
  const int64_t named = step_of_file_name(fs::path(file.path()).filename().string());
  require_input(named < 0 || named == step,
                fmt::format("{}: {}@step is {}, but the file's name says step {}: the file is damaged", file.path(),
                            kTrainGroup, step, named));
}

}  // namespace

const std::string& tensor_group_path(int group) {
  static const std::string paths[kTensorGroups] = {kModelGroup, kFirstMomentGroup, kSecondMomentGroup};
  check_internal(group >= 0 && group < kTensorGroups, "no such tensor group");
  return paths[group];
}

TrainingCheckpointWriter::TrainingCheckpointWriter(const std::string& path, const ModelConfig& model)
    : out_(path, checkpoint_file_bytes(model, kTensorGroups)), file_(Hdf5File::create(out_.temporary())) {
  for (int group = 0; group < kTensorGroups; ++group) file_.create_group(tensor_group_path(group));
  file_.write_string_attribute(kModelGroup, "config", model_config_to_yaml(model));
}

void TrainingCheckpointWriter::write(int group, const ParameterInfo& full, const float* values) {
  write_parameter(file_, tensor_group_path(group), full, values);
}

void TrainingCheckpointWriter::commit(const TrainingState& state) {
  check_internal(has_non_negative_counts(state), "training checkpoint: negative step, count or loader position");
  write_train_group(file_, state);
  file_.close();
  out_.commit();
}

void save_training_checkpoint(const std::string& path, const ModelConfig& model, const CheckpointValues& values,
                              const TrainingState& state) {
  const ParameterTable table(model);
  TrainingCheckpointWriter writer(path, model);
  for (int group = 0; group < kTensorGroups; ++group) {
    const std::vector<float> v = values(group);
    check_internal(static_cast<int64_t>(v.size()) == table.total_elements(),
                   "save_training_checkpoint: wrong number of values");
    for (const ParameterInfo& p : table.entries()) writer.write(group, p, v.data() + p.offset);
  }
  writer.commit(state);
}

TrainingState read_training_state(const Hdf5File& file) {
  require_input(file.has_group(kTrainGroup), not_training_checkpoint(file, kTrainGroup));
  require_supported_version(file);
  TrainingState state;
  state.step = read_count(file, "step");
  require_step_of_file_name(file, state.step);
  state.tokens = read_count(file, "tokens");
  state.optimizer_updates = read_count(file, "optimizer_updates");
  state.skipped_updates = read_count(file, "skipped_updates");
  state.config_yaml = file.read_string_attribute(kTrainGroup, "config");
  state.loader_positions = file.read_int64_array_attribute(kTrainGroup, "loader_positions");
  for (const int64_t position : state.loader_positions)
    require_input(position >= 0,
                  fmt::format("{}: {}@loader_positions: negative position {}", file.path(), kTrainGroup, position));
  state.seed = file.read_uint64_attribute(kTrainGroup, "seed");
  return state;
}

Hdf5File open_training_checkpoint(const std::string& path, const ModelConfig& model) {
  Hdf5File file = Hdf5File::open_read_only(path);
  require_input(file.has_group(kModelGroup), file.path() + ": no " + kModelGroup + " group (not a model checkpoint)");
  require_input(file.has_group(kOptimGroup), not_training_checkpoint(file, kOptimGroup));
  read_training_state(file);
  for (int group = 0; group < kTensorGroups; ++group) check_parameter_group(file, tensor_group_path(group), model);
  require_same_model(file, model);
  return file;
}

TrainingState load_training_checkpoint(const std::string& path, const ModelConfig& model, const ParameterTable& slices,
                                       const CheckpointSink& take) {
  const Hdf5File file = open_training_checkpoint(path, model);
  const TrainingState state = read_training_state(file);
  std::vector<float> values(slices.total_elements());
  for (int group = 0; group < kTensorGroups; ++group) {
    read_parameter_group(file, tensor_group_path(group), model, slices, values.data());
    take(group, values);
  }
  return state;
}

std::string checkpoint_file_name(int64_t step) {
  check_internal(step >= 0, "checkpoint_file_name: negative step");
  return fmt::format("{}{:08}{}", kFilePrefix, step, kFileSuffix);
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::error_code error;
  const bool exists = fs::exists(dir, error);
  require_input(!error, dir + ": cannot look up checkpoint directory: " + error.message());
  if (!exists) return {};
  std::vector<std::pair<int64_t, std::string>> found;
  fs::directory_iterator it(dir, error);
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    const int64_t step = step_of_file_name(it->path().filename().string());
    std::error_code type_error;
    if (step >= 0 && it->is_regular_file(type_error)) found.emplace_back(step, it->path().string());
  }
  require_input(!error, dir + ": cannot list checkpoint directory: " + error.message());
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> paths;
  for (auto& [step, path] : found) paths.push_back(std::move(path));
  return paths;
}

void prune_checkpoints(const std::string& dir, int64_t keep) {
  check_internal(keep >= 0, "prune_checkpoints: negative keep");
  const std::vector<std::string> paths = list_checkpoints(dir);
  for (size_t i = static_cast<size_t>(keep); i < paths.size(); ++i) {
    std::error_code error;
    fs::remove(paths[i], error);
    require_input(!error, paths[i] + ": cannot delete old checkpoint: " + error.message());
  }
}

}  // namespace ratplus
