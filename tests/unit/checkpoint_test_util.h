// Helpers shared by the checkpoint tests: a small model, random parameter values, and raw edits of files
// (a flipped data byte, a dataset replaced by one of another type or layout, or with chunks never written).
#pragma once

#include <H5Cpp.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "model/parameters.h"

namespace ratplus::test {

inline ModelConfig small_config(bool tie_embeddings = true, bool recurrence = true) {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.d_ffn = 24;
  c.norm_eps = 1e-5;
  c.rope_base = 500000.0;
  c.tie_embeddings = tie_embeddings;
  c.recurrence = recurrence;
  return c;
}

// One standard normal value per parameter of the model, in the layout of its parameter table.
inline std::vector<float> random_values(const ModelConfig& config, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(ParameterTable(config).total_elements());
  for (float& x : values) x = normal(rng);
  return values;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Edits an existing file with the plain HDF5 API, as another program would.
inline void edit_file(const std::string& path, const std::function<void(H5::H5File&)>& edit) {
  H5::H5File file(path, H5F_ACC_RDWR);
  edit(file);
}

// The values of the parameter `name` within `values` (laid out as the parameter table of `config`).
inline std::vector<float> parameter_values(const ModelConfig& config, const std::vector<float>& values,
                                           const std::string& name) {
  const ParameterTable table(config);
  const ParameterInfo& p = table.entries()[table.find(name)];
  return {values.begin() + p.offset, values.begin() + p.offset + p.numel()};
}

// Dataset creation properties: chunks of `rows` whole rows of a [*, cols] dataset, with a Fletcher-32 checksum.
inline H5::DSetCreatPropList checksummed_chunks(hsize_t rows, hsize_t cols) {
  H5::DSetCreatPropList layout;
  const hsize_t chunk[2] = {rows, cols};
  layout.setChunk(2, chunk);
  layout.setFletcher32();
  return layout;
}

// IEEE half precision, which HDF5 1.10 does not predefine (built as h5py builds it).
inline H5::FloatType float16_type() {
  H5::FloatType type(H5::PredType::IEEE_F32LE);
  type.setFields(15, 10, 5, 0, 10);
  type.setSize(2);
  type.setEbias(15);
  return type;
}

// Replaces the 2-D dataset `name` of the file at `path` by one of the same shape, stored as `type` with the
// creation properties `layout`, into which the first `written_rows` rows of `values` are written. With
// chunks, those never written are not stored at all (HDF5 would read them as fill values).
inline void replace_dataset(const std::string& path, const std::string& name, const std::vector<float>& values,
                            const H5::DataType& type, const H5::DSetCreatPropList& layout, hsize_t written_rows) {
  edit_file(path, [&](H5::H5File& file) {
    const H5::DataSpace space = file.openDataSet(name).getSpace();
    ASSERT_EQ(space.getSimpleExtentNdims(), 2);
    file.unlink(name);
    const H5::DataSet dataset = file.createDataSet(name, type, space, layout);
    if (written_rows == 0) return;
    hsize_t dims[2];
    space.getSimpleExtentDims(dims);
    const hsize_t count[2] = {written_rows, dims[1]}, start[2] = {0, 0};
    const H5::DataSpace part = dataset.getSpace();
    part.selectHyperslab(H5S_SELECT_SET, count, start);
    dataset.write(values.data(), H5::PredType::NATIVE_FLOAT, H5::DataSpace(2, count), part);
  });
}

// Flips one bit 200 bytes into the stored data of `parameter`, which must hold more than 200 bytes. The data
// is found in the file by the first 64 bytes of `values` (laid out as the parameter table of `config`),
// which must occur exactly once.
inline void flip_byte_in_data(const std::string& path, const ModelConfig& config, const std::vector<float>& values,
                              const std::string& parameter) {
  const ParameterTable table(config);
  const ParameterInfo& target = table.entries()[table.find(parameter)];
  std::string bytes = read_bytes(path);
  const std::string needle(reinterpret_cast<const char*>(values.data() + target.offset), 64);
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.rfind(needle), at);
  bytes[at + 200] ^= 0x10;
  write_bytes(path, bytes);
}

// Writes the first half of the file at `from` to `to`, as an interrupted copy would.
inline void write_first_half(const std::string& from, const std::string& to) {
  const std::string bytes = read_bytes(from);
  write_bytes(to, bytes.substr(0, bytes.size() / 2));
}

}  // namespace ratplus::test
