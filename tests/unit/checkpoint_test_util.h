// Helpers shared by the checkpoint tests: a small model, random parameter values, and raw edits of files.
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
