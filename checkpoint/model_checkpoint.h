// Inference checkpoints (SPEC §7): the /model group of an HDF5 file, i.e. every parameter of the
// ParameterTable as a float32 dataset /model/<name> plus the model config as YAML in the attribute
// /model@config. The group-level functions let training checkpoints put /model and groups laid out like
// it into a larger file.
#pragma once

#include <cstdint>
#include <string>

#include "checkpoint/hdf5_file.h"
#include "core/model_config.h"
#include "model/model.h"
#include "model/parameters.h"

namespace ratplus {

// A little more than the bytes a file of `groups` tensor groups laid out like /model takes: the float32 data,
// 16 KiB per dataset for its header, checksum and alignment, and 1 MiB for the rest.
uint64_t checkpoint_file_bytes(const ModelConfig& config, int groups);

// Writes an inference checkpoint atomically (via `path + ".tmp"` and a rename). `params` is the flat
// buffer laid out by ParameterTable(config).
void save_model_checkpoint(const std::string& path, const ModelConfig& config, const float* params);

// The model config stored in a checkpoint. InputError naming the file if it is not a readable HDF5 file,
// lacks /model or its `config` attribute, or the YAML is invalid.
ModelConfig read_checkpoint_model_config(const std::string& path);

// Reads every parameter of ParameterTable(config) into `params`. Missing datasets, wrong shapes, types other
// than float32, datasets the table does not know, and damage are InputErrors naming the file and the
// dataset. Damage is: data or a chunk of it that is not stored (HDF5 would read zeros), a dataset without a checksum in a
// group whose other datasets have one (files written by other programs may have none at all), a checksum
// mismatch, a value that is not finite. The layout and storage are checked before any data is read, the
// values of each tensor as it is read; after a read error the contents of `params` are unspecified.
void load_model_parameters(const std::string& path, const ModelConfig& config, float* params);
// The same for the slices a tensor-parallel rank holds (`slices`, a ParameterTable of `config`): only they
// are read, into `params` laid out by `slices`.
void load_model_parameters(const std::string& path, const ModelConfig& config, const ParameterTable& slices,
                           float* params);

// Reads the /model group into the weights of `model` (whose config the file must match), one tensor at a
// time: straight into an f32 model on the CPU, else through a host buffer of one tensor, converted to the
// model's type on its device — so loading needs no host copy of the whole model. Errors as above.
void load_model_weights(const std::string& path, Model& model);

// The same, on an open file.
void write_model_group(Hdf5File& file, const ModelConfig& config, const float* params);
ModelConfig read_model_group_config(const Hdf5File& file);
void read_model_group(const Hdf5File& file, const ModelConfig& config, const ParameterTable& slices, float* params);

// One tensor of a group laid out like /model: write the full values of an entry of ParameterTable(config);
// read the part a slice entry (of a tensor-parallel rank's table) describes into `values` (slice.numel()),
// checking that it is finite.
void write_parameter(Hdf5File& file, const std::string& group, const ParameterInfo& full, const float* values);
void read_parameter(const Hdf5File& file, const std::string& group, const ParameterInfo& slice, float* values);

// Any group laid out like /model (one float32 dataset per parameter, e.g. the AdamW moments /optim/m):
// write `values`; check that the group holds exactly the table's datasets with their shapes and type, their
// data stored and checksums on all or none of them (InputError naming the dataset otherwise); check and then
// read it into `values`.
void write_parameter_group(Hdf5File& file, const std::string& group, const ModelConfig& config, const float* values);
void check_parameter_group(const Hdf5File& file, const std::string& group, const ModelConfig& config);
void read_parameter_group(const Hdf5File& file, const std::string& group, const ModelConfig& config,
                          const ParameterTable& slices, float* values);
// Verification (`ckpt inspect --verify`): checks the group as check_parameter_group does, except that every
// dataset must carry a checksum, then reads every tensor in full, one at a time, as loading reads it: each
// chunk's checksum and each value's finiteness are checked. InputError naming the dataset otherwise.
void verify_parameter_group(const Hdf5File& file, const std::string& group, const ModelConfig& config);

}  // namespace ratplus
