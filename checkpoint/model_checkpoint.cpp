// Writing and reading the /model group of SPEC §7 checkpoints, and the checks every read makes: the layout
// and storage of a group before any of its data is read, and the finiteness of each tensor as it is read.
#include "checkpoint/model_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "core/buffer.h"
#include "core/config.h"
#include "core/error.h"
#include "model/parameters.h"

namespace ratplus {
namespace {

const std::string kModelGroup = "/model";
const std::string kConfigAttribute = "config";

std::string dataset_path(const std::string& group, const std::string& name) { return group + "/" + name; }

std::vector<int64_t> stored_shape(const ParameterInfo& p) {
  if (p.is_vector) return {p.cols};
  return {p.rows, p.cols};
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

void require_model_group(const Hdf5File& file) {
  require_input(file.has_group(kModelGroup), file.path() + ": no " + kModelGroup + " group (not a model checkpoint)");
}

// Every dataset under `group` must be a parameter of the table.
void reject_unknown_datasets(const Hdf5File& file, const std::string& group, const ParameterTable& table) {
  std::string unknown;
  for (const std::string& name : file.list_datasets(group))
    if (table.find(name) < 0) unknown += (unknown.empty() ? "" : ", ") + dataset_path(group, name);
  require_input(unknown.empty(), file.path() + ": datasets not in the model's parameter table: " + unknown);
}

void check_dataset_layout(const Hdf5File& file, const std::string& group, const ParameterInfo& p) {
  const std::string path = dataset_path(group, p.name);
  const std::vector<int64_t> expected = stored_shape(p);
  require_input(file.has_dataset(path),
                file.path() + ": " + path + ": missing dataset (expected shape " + shape_text(expected) + ")");
  file.require_float32(path);
  const std::vector<int64_t> found = file.dataset_shape(path);
  require_input(found == expected, file.path() + ": " + path + ": expected shape " + shape_text(expected) +
                                       ", found " + shape_text(found));
}

// Which datasets of a group must carry a checksum (a CRC-32 attribute, or Fletcher-32 chunks in older files).
enum class Checksums {
  all_or_none,  // loading: files written without any (h5py's default) load; ours have one on every dataset
  required,     // verifying: a dataset without one cannot be verified
};

// The data of every dataset of the group is stored, each chunk of it in older chunked files (HDF5 would read
// missing data as zeros), and the datasets carry checksums as `checksums` asks.
void check_group_storage(const Hdf5File& file, const std::string& group, const ParameterTable& table,
                         Checksums checksums) {
  std::vector<Hdf5File::Storage> storage;
  for (const ParameterInfo& p : table.entries()) {
    const std::string path = dataset_path(group, p.name);
    const Hdf5File::Storage& s = storage.emplace_back(file.dataset_storage(path));
    require_input(s.stored_chunks == s.chunks,
                  fmt::format("{}: {}: its data is not stored in full ({} of {} chunks; the rest would read as zeros): "
                              "the file is damaged",
                              file.path(), path, s.stored_chunks, s.chunks));
  }
  const bool any_checksummed =
      std::any_of(storage.begin(), storage.end(), [](const Hdf5File::Storage& s) { return s.checksummed; });
  for (size_t i = 0; i < storage.size(); ++i) {
    const std::string path = dataset_path(group, table.entries()[i].name);
    require_input(storage[i].checksummed || !any_checksummed,
                  fmt::format("{}: {}: has no checksum, unlike the other datasets of {}: the file is damaged",
                              file.path(), path, group));
    require_input(storage[i].checksummed || checksums == Checksums::all_or_none,
                  fmt::format("{}: {}: has no checksum, so it cannot be verified (files written by other programs "
                              "may lack them; ratplus writes one for every dataset)",
                              file.path(), path));
  }
}

void check_group(const Hdf5File& file, const std::string& group, const ModelConfig& config, Checksums checksums) {
  require_input(file.has_group(group), file.path() + ": no " + group + " group");
  const ParameterTable table(config);
  for (const ParameterInfo& p : table.entries()) check_dataset_layout(file, group, p);
  reject_unknown_datasets(file, group, table);
  check_group_storage(file, group, table, checksums);
}

// Whether no value is NaN or infinite (all exponent bits set): a branch-free reduction that compilers
// vectorize, running at memory speed (over 10 GB/s), far faster than HDF5 reads the data.
bool all_finite(const float* values, int64_t count) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t non_finite = 0;
  for (int64_t i = 0; i < count; ++i) non_finite |= (std::bit_cast<uint32_t>(values[i]) & kExponent) == kExponent;
  return non_finite == 0;
}

void require_finite(const Hdf5File& file, const std::string& path, const float* values, int64_t count) {
  if (all_finite(values, count)) return;
  const float bad = *std::find_if(values, values + count, [](float x) { return !std::isfinite(x); });
  throw InputError(fmt::format("{}: {}: holds a non-finite value ({}), which no trained model has: the file is damaged",
                               file.path(), path, bad));
}

}  // namespace

void write_parameter(Hdf5File& file, const std::string& group, const ParameterInfo& full, const float* values) {
  check_internal(full.replicated(), "write_parameter: full tensors only");
  file.write_floats(dataset_path(group, full.name), values, stored_shape(full));
}

void read_parameter(const Hdf5File& file, const std::string& group, const ParameterInfo& slice, float* values) {
  const std::string path = dataset_path(group, slice.name);
  file.read_floats(path, values,
                   Hdf5File::Part{slice.row_blocks, slice.row_begin, slice.rows, slice.col_begin, slice.cols});
  require_finite(file, path, values, slice.numel());
}

void write_parameter_group(Hdf5File& file, const std::string& group, const ModelConfig& config, const float* values) {
  file.create_group(group);
  const ParameterTable table(config);
  for (const ParameterInfo& p : table.entries()) write_parameter(file, group, p, values + p.offset);
}

void check_parameter_group(const Hdf5File& file, const std::string& group, const ModelConfig& config) {
  check_group(file, group, config, Checksums::all_or_none);
}

void read_parameter_group(const Hdf5File& file, const std::string& group, const ModelConfig& config,
                          const ParameterTable& slices, float* values) {
  check_parameter_group(file, group, config);
  for (const ParameterInfo& p : slices.entries()) read_parameter(file, group, p, values + p.offset);
}

void verify_parameter_group(const Hdf5File& file, const std::string& group, const ModelConfig& config) {
  check_group(file, group, config, Checksums::required);
  const ParameterTable table(config);
  std::vector<float> values;
  for (const ParameterInfo& p : table.entries()) {
    values.resize(static_cast<size_t>(p.numel()));
    read_parameter(file, group, p, values.data());
  }
}

void write_model_group(Hdf5File& file, const ModelConfig& config, const float* params) {
  write_parameter_group(file, kModelGroup, config, params);
  file.write_string_attribute(kModelGroup, kConfigAttribute, model_config_to_yaml(config));
}

ModelConfig read_model_group_config(const Hdf5File& file) {
  require_model_group(file);
  return model_config_from_yaml(file.read_string_attribute(kModelGroup, kConfigAttribute),
                                file.path() + ":" + kModelGroup + "@" + kConfigAttribute);
}

void read_model_group(const Hdf5File& file, const ModelConfig& config, const ParameterTable& slices, float* params) {
  require_model_group(file);
  read_parameter_group(file, kModelGroup, config, slices, params);
}

uint64_t checkpoint_file_bytes(const ModelConfig& config, int groups) {
  const ParameterTable table(config);
  const auto datasets = static_cast<uint64_t>(table.entries().size());
  return groups * (static_cast<uint64_t>(table.total_elements()) * sizeof(float) + datasets * (16 << 10)) + (1 << 20);
}

void save_model_checkpoint(const std::string& path, const ModelConfig& config, const float* params) {
  write_hdf5_atomically(path, [&](Hdf5File& file) { write_model_group(file, config, params); },
                        checkpoint_file_bytes(config, 1));
}

ModelConfig read_checkpoint_model_config(const std::string& path) {
  return read_model_group_config(Hdf5File::open_read_only(path));
}

void load_model_parameters(const std::string& path, const ModelConfig& config, const ParameterTable& slices,
                           float* params) {
  read_model_group(Hdf5File::open_read_only(path), config, slices, params);
}

void load_model_parameters(const std::string& path, const ModelConfig& config, float* params) {
  load_model_parameters(path, config, ParameterTable(config), params);
}

void load_model_weights(const std::string& path, Model& model) {
  const Hdf5File file = Hdf5File::open_read_only(path);
  require_model_group(file);
  check_parameter_group(file, kModelGroup, model.config());
  const Tensor weights = model.weights();
  const bool direct = model.device() == Device::cpu && model.dtype() == DType::f32;
  check_internal(direct || model.dtype() != DType::f64, "load_model_weights: f64 models load through set_parameters");
  std::vector<float> staging;
  const auto& entries = model.table().entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const ParameterInfo& p = entries[i];
    if (direct) {
      read_parameter(file, kModelGroup, p, weights.ptr<float>() + p.offset);
      continue;
    }
    staging.resize(static_cast<size_t>(p.numel()));
    read_parameter(file, kModelGroup, p, staging.data());
    from_host_floats(weights.cols_slice(p.offset, p.numel()), staging);
  }
}

}  // namespace ratplus
