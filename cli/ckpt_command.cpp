// `ratplus ckpt inspect FILE [--verify]`: what a checkpoint holds (its kind, model config, tensors and, for
// a training checkpoint, the /train state) and, with --verify, whether every dataset still reads back
// intact (model_checkpoint.h's verification: its data stored (every chunk, in older chunked files) and
// checksummed, each checksum right on reading, every value finite).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <sstream>

#include "checkpoint/hdf5_file.h"
#include "checkpoint/model_checkpoint.h"
#include "checkpoint/training_checkpoint.h"
#include "cli/commands.h"
#include "core/config.h"
#include "model/parameters.h"

namespace ratplus::cli {

namespace {

const std::vector<std::string> kInferenceGroups = {"/model"};
const std::vector<std::string> kTrainingGroups = {"/model", "/optim/m", "/optim/v"};

bool is_training_checkpoint(const Hdf5File& file) { return file.has_group("/train") || file.has_group("/optim"); }

void print_model(const ModelConfig& config) {
  fmt::print("model:\n");
  std::istringstream yaml(model_config_to_yaml(config));
  for (std::string line; std::getline(yaml, line);) fmt::print("  {}\n", line);
}

void print_tensors(const Hdf5File& file, const ParameterTable& table) {
  size_t width = 0;
  for (const ParameterInfo& p : table.entries()) width = std::max(width, p.name.size());
  fmt::print("tensors ({}):\n", table.entries().size());
  for (const ParameterInfo& p : table.entries())
    fmt::print("  {:<{}}  [{}]\n", p.name, width, fmt::join(file.dataset_shape("/model/" + p.name), ", "));
}

void print_training_state(const Hdf5File& file) {
  const TrainingState state = read_training_state(file);
  fmt::print("training state (/train):\n");
  fmt::print("  step               {}\n", state.step);
  fmt::print("  tokens             {}\n", state.tokens);
  fmt::print("  optimizer updates  {}\n", state.optimizer_updates);
  fmt::print("  skipped updates    {}\n", state.skipped_updates);
  fmt::print("  loader positions   [{}]\n", fmt::join(state.loader_positions, ", "));
  fmt::print("  seed               {}\n", state.seed);
  fmt::print("  format version     {}\n", file.read_int64_attribute("/train", "format_version"));
  fmt::print("  config             {} bytes of YAML\n", state.config_yaml.size());
}

// Verifies every dataset of the groups; returns their number.
size_t verify_groups(const Hdf5File& file, const std::vector<std::string>& groups, const ModelConfig& config) {
  for (const std::string& group : groups) verify_parameter_group(file, group, config);
  return groups.size() * ParameterTable(config).entries().size();
}

void inspect(const std::string& path, bool verify) {
  const Hdf5File file = Hdf5File::open_read_only(path);
  const ModelConfig config = read_model_group_config(file);
  const bool training = is_training_checkpoint(file);
  const std::vector<std::string>& groups = training ? kTrainingGroups : kInferenceGroups;
  for (const std::string& group : groups) check_parameter_group(file, group, config);
  const ParameterTable table(config);

  fmt::print("file: {}\n", path);
  fmt::print("kind: {}\n", training ? "training checkpoint (/model, /optim/m, /optim/v, /train)"
                                    : "inference checkpoint (/model only)");
  print_model(config);
  fmt::print("parameters: {}\n", table.total_elements());
  print_tensors(file, table);
  if (training) print_training_state(file);
  if (verify) fmt::print("all {} datasets verified\n", verify_groups(file, groups, config));
}

}  // namespace

Action add_ckpt_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ckpt", "inspect checkpoints");
  cmd->require_subcommand(1);
  struct Options {
    std::string file;
    bool verify = false;
  };
  auto o = std::make_shared<Options>();
  auto* inspect_cmd = cmd->add_subcommand("inspect", "print a checkpoint's kind, model, tensors and training state");
  inspect_cmd->add_option("file", o->file, "checkpoint (.h5)")->required();
  inspect_cmd->add_flag("--verify", o->verify,
                        "read every dataset, checking that its data is stored, its checksum and that every value "
                        "is finite");
  return [o] { inspect(o->file, o->verify); };
}

}  // namespace ratplus::cli
