// Tests of HDF5 inference checkpoints (SPEC §7): exact round trips, files written by other programs,
// every kind of bad or damaged file (unstored chunks, missing checksums, non-finite values, other float
// types), verification, atomic writes, and the Hdf5File wrapper itself.
#include <H5Cpp.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/hdf5_file.h"
#include "checkpoint/model_checkpoint.h"
#include "checkpoint_test_util.h"
#include "model/model.h"
#include "model/parameters.h"
#include "core/temp_dir.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

void add_float_dataset(H5::H5File& file, const std::string& path, const std::vector<hsize_t>& dims) {
  H5::LinkCreatPropList links;
  links.setCreateIntermediateGroup(true);
  const std::vector<float> zeros(dims[0] * (dims.size() > 1 ? dims[1] : 1), 0.0f);
  file.createDataSet(path, H5::PredType::IEEE_F32LE, H5::DataSpace(static_cast<int>(dims.size()), dims.data()),
                     H5::DSetCreatPropList::DEFAULT, H5::DSetAccPropList::DEFAULT, links)
      .write(zeros.data(), H5::PredType::NATIVE_FLOAT);
}

// Writes /model the way h5py does by default: contiguous datasets without filters, float64 or float32,
// and the config as a fixed-length (NUL-padded) or variable-length string.
void write_foreign_checkpoint(const std::string& path, const ModelConfig& config, const std::vector<float>& params,
                              const std::string& config_yaml, bool as_float64, bool fixed_length_config) {
  H5::H5File file(path, H5F_ACC_TRUNC);
  const H5::Group model = file.createGroup("/model");
  if (fixed_length_config) {
    H5::StrType type(H5::PredType::C_S1, config_yaml.size());
    type.setStrpad(H5T_STR_NULLPAD);
    model.createAttribute("config", type, H5::DataSpace(H5S_SCALAR)).write(type, config_yaml.c_str());
  } else {
    H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
    type.setCset(H5T_CSET_UTF8);
    model.createAttribute("config", type, H5::DataSpace(H5S_SCALAR)).write(type, config_yaml);
  }
  H5::LinkCreatPropList links;
  links.setCreateIntermediateGroup(true);
  const ParameterTable table(config);
  for (const ParameterInfo& p : table.entries()) {
    std::vector<hsize_t> dims = {hsize_t(p.rows), hsize_t(p.cols)};
    if (p.is_vector) dims = {hsize_t(p.cols)};
    const H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
    const float* data = params.data() + p.offset;
    const H5::DataType& type = as_float64 ? H5::PredType::IEEE_F64LE : H5::PredType::IEEE_F32LE;
    const H5::DataSet dataset = model.createDataSet(p.name, type, space, H5::DSetCreatPropList::DEFAULT,
                                                    H5::DSetAccPropList::DEFAULT, links);
    if (as_float64) {
      const std::vector<double> wide(data, data + p.numel());
      dataset.write(wide.data(), H5::PredType::NATIVE_DOUBLE);
    } else {
      dataset.write(data, H5::PredType::NATIVE_FLOAT);
    }
  }
}

// A model whose tensors split over two tensor-parallel ranks, and its config as another program writes it.
ModelConfig sliceable_config(bool tie_embeddings = true) {
  ModelConfig config = small_config(tie_embeddings);
  config.vocab_size = 38;
  return config;
}
const std::string kForeignYaml =
    "vocab_size: 38\nd_model: 8\nn_layers: 2\nn_heads: 2\nd_ffn: 24\nnorm_eps: 1.0e-5\n"
    "rope_base: 500000.0\ntie_embeddings: false\nrecurrence: true\n";

class CheckpointTest : public ::testing::Test {
 protected:
  // Saves a small model and returns its parameters.
  std::vector<float> save_small(const std::string& path, const ModelConfig& config, unsigned seed = 1) {
    std::vector<float> params = random_values(config, seed);
    save_model_checkpoint(path, config, params.data());
    return params;
  }

  void expect_load_error(const std::string& path, const ModelConfig& config,
                         const std::vector<std::string>& fragments) {
    std::vector<float> params(ParameterTable(config).total_elements());
    expect_input_error([&] { load_model_parameters(path, config, params.data()); }, fragments);
  }

  // Every way of reading /model refuses the file: the flat load, the weights of a model, each tensor-parallel
  // rank's slices (`slice_ranks` of 2: the ranks whose slices hold the damage) and verification.
  void expect_refused_everywhere(const std::string& path, const ModelConfig& config,
                                 const std::vector<std::string>& fragments,
                                 const std::vector<int>& slice_ranks = {0, 1}) {
    expect_load_error(path, config, fragments);
    Model model(config, Device::cpu, DType::f32);
    expect_input_error([&] { load_model_weights(path, model); }, fragments);
    for (const int rank : slice_ranks) {
      const ParameterTable slices(config, rank, 2);
      std::vector<float> local(slices.total_elements());
      expect_input_error([&] { load_model_parameters(path, config, slices, local.data()); }, fragments);
    }
    expect_input_error([&] { verify_parameter_group(Hdf5File::open_read_only(path), "/model", config); }, fragments);
  }

  TempDir dir_;
};

TEST_F(CheckpointTest, RoundTripIsBitwiseExact) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  const std::vector<float> saved = save_small(path, config);

  const ModelConfig read = read_checkpoint_model_config(path);
  EXPECT_EQ(read, config);
  std::vector<float> loaded(saved.size(), -1.0f);
  load_model_parameters(path, read, loaded.data());
  EXPECT_TRUE(same_bits(saved, loaded));
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"model.h5"});  // no temporary left behind

  const Hdf5File file = Hdf5File::open_read_only(path);
  EXPECT_EQ(file.dataset_shape("/model/embed/weight"), (std::vector<int64_t>{37, 8}));
  EXPECT_EQ(file.dataset_shape("/model/layers/1/attn_norm/weight"), (std::vector<int64_t>{8}));
  EXPECT_EQ(file.dataset_shape("/model/layers/0/attn/in_proj/weight"), (std::vector<int64_t>{40, 8}));
  EXPECT_EQ(file.dataset_shape("/model/layers/0/ffn/fc2/weight"), (std::vector<int64_t>{8, 24}));
  EXPECT_EQ(file.dataset_shape("/model/final_norm/weight"), (std::vector<int64_t>{8}));
  EXPECT_FALSE(file.has_dataset("/model/lm_head/weight"));
}

// A model's weights load tensor by tensor, straight into an f32 model, and to the same values as the flat read.
TEST_F(CheckpointTest, ModelWeightsLoadToTheSavedValues) {
  for (const bool tied : {true, false}) {
    const ModelConfig config = small_config(tied);
    const std::string path = dir_.file(tied ? "tied.h5" : "untied.h5");
    const std::vector<float> saved = save_small(path, config);
    Model model(config, Device::cpu, DType::f32);
    load_model_weights(path, model);
    EXPECT_TRUE(same_bits(model.get_parameters(), saved)) << "tied " << tied;
  }
  Model other(small_config(true, false), Device::cpu, DType::f32);
  expect_input_error([&] { load_model_weights(dir_.file("tied.h5"), other); }, {"tied.h5"});
}

TEST_F(CheckpointTest, UntiedEmbeddingsWithoutRecurrence) {
  const ModelConfig config = small_config(/*tie_embeddings=*/false, /*recurrence=*/false);
  const std::string path = dir_.file("untied.h5");
  const std::vector<float> saved = save_small(path, config, 7);

  const ModelConfig read = read_checkpoint_model_config(path);
  EXPECT_EQ(read, config);
  std::vector<float> loaded(saved.size());
  load_model_parameters(path, read, loaded.data());
  EXPECT_TRUE(same_bits(saved, loaded));

  const Hdf5File file = Hdf5File::open_read_only(path);
  EXPECT_EQ(file.dataset_shape("/model/lm_head/weight"), (std::vector<int64_t>{37, 8}));
  EXPECT_EQ(file.dataset_shape("/model/layers/1/attn/in_proj/weight"), (std::vector<int64_t>{32, 8}));
}

// A tensor-parallel rank reads only its slices (HDF5 hyperslabs), and they are the Megatron slices: written
// out here element by element from SPEC §7's full tensors, independently of the parameter table.
TEST_F(CheckpointTest, TensorParallelRanksReadTheirSlices) {
  for (const bool tied : {true, false})
    for (const bool recurrence : {true, false}) {
      ModelConfig config = small_config(tied, recurrence);
      config.vocab_size = 38;
      const std::string path = dir_.file("tp.h5");
      const std::vector<float> full = save_small(path, config, 5);
      const ParameterTable whole(config);
      const int64_t d = config.d_model, f = config.d_ffn, v = config.vocab_size, h = d / 2;
      std::vector<float> rebuilt(full.size(), NAN);
      for (int rank = 0; rank < 2; ++rank) {
        const ParameterTable slices(config, rank, 2);
        std::vector<float> local(slices.total_elements());
        load_model_parameters(path, config, slices, local.data());
        place_in_full(slices, local.data(), rebuilt.data(), rank == 0);
        // Element (r, c) of this rank's slice of a tensor, read from the full tensor by the Megatron rules.
        auto full_at = [&](const std::string& name, int64_t r, int64_t c) {
          const ParameterInfo& p = whole.entries()[whole.find(name)];
          int64_t row = r, col = c;
          if (name.ends_with("in_proj/weight")) row = r / h * d + rank * h + r % h;  // each block by heads
          if (name.ends_with("out_proj/weight")) col = rank * h + c;
          if (name.ends_with("fc1/weight")) row = rank * f / 2 + r;
          if (name.ends_with("fc2/weight")) col = rank * f / 2 + c;
          if (name == "embed/weight" || name == "lm_head/weight") row = rank * v / 2 + r;
          return full[p.offset + row * p.cols + col];
        };
        for (const ParameterInfo& p : slices.entries())
          for (int64_t r = 0; r < p.rows; ++r)
            for (int64_t c = 0; c < p.cols; ++c)
              ASSERT_EQ(local[p.offset + r * p.cols + c], full_at(p.name, r, c)) << p.name << " rank " << rank;
      }
      EXPECT_TRUE(same_bits(rebuilt, full)) << "the two ranks' slices cover every element once";
    }
}

// The CRC-32 attribute of a dataset, read without ratplus.
uint32_t crc32_attribute(const H5::DataSet& dataset) {
  uint32_t crc = 0;
  dataset.openAttribute("crc32").read(H5::PredType::NATIVE_UINT32, &crc);
  return crc;
}

uint32_t zlib_crc32(const float* values, int64_t count) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(values), static_cast<uInt>(count * 4)));
}

TEST_F(CheckpointTest, DatasetsAreContiguousWithTheirCrc32) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  const std::vector<float> params = save_small(path, config);
  const H5::H5File file(path, H5F_ACC_RDONLY);
  const ParameterTable table(config);
  for (const ParameterInfo& p : table.entries()) {
    const H5::DataSet dataset = file.openDataSet("/model/" + p.name);
    EXPECT_EQ(dataset.getCreatePlist().getLayout(), H5D_CONTIGUOUS) << p.name;
    EXPECT_EQ(dataset.getCreatePlist().getNfilters(), 0) << p.name;
    EXPECT_EQ(crc32_attribute(dataset), zlib_crc32(params.data() + p.offset, p.numel())) << p.name;
  }
}

// Zeroed data (the checksum kept) and a dataset whose storage was never allocated are both damage.
TEST_F(CheckpointTest, ZeroedOrUnallocatedDataIsReportedAsDamage) {
  const ModelConfig config = sliceable_config(/*tie_embeddings=*/false);
  const std::string path = dir_.file("model.h5");
  save_small(path, config);
  {
    H5::H5File file(path, H5F_ACC_RDWR);
    const std::vector<float> zeros(38 * 8, 0.0f);
    file.openDataSet("/model/embed/weight").write(zeros.data(), H5::PredType::NATIVE_FLOAT);
  }
  expect_refused_everywhere(path, config, {path, "/model/embed/weight", "checksum mismatch", "damaged"});

  const std::vector<float> params = save_small(path, config);
  {
    H5::H5File file(path, H5F_ACC_RDWR);
    const uint32_t crc = crc32_attribute(file.openDataSet("/model/embed/weight"));
    file.unlink("/model/embed/weight");
    const hsize_t dims[2] = {38, 8};
    const H5::DataSet empty = file.createDataSet("/model/embed/weight", H5::PredType::IEEE_F32LE,
                                                 H5::DataSpace(2, dims));  // never written: no storage
    empty.createAttribute("crc32", H5::PredType::STD_U32LE, H5::DataSpace(H5S_SCALAR))
        .write(H5::PredType::NATIVE_UINT32, &crc);
  }
  expect_refused_everywhere(path, config, {path, "/model/embed/weight", "0 of 1 chunks", "damaged"});
}

// Files written without checksums (h5py's default) load, but verification does not vouch for them.
TEST_F(CheckpointTest, LoadsFilesWrittenByOtherPrograms) {
  const ModelConfig config = sliceable_config(/*tie_embeddings=*/false);
  const std::vector<float> params = random_values(config, 3);
  for (const bool fixed_length : {true, false}) {
    SCOPED_TRACE(fixed_length ? "fixed" : "variable");
    const std::string path = dir_.file("foreign.h5");
    write_foreign_checkpoint(path, config, params, kForeignYaml, /*as_float64=*/false, fixed_length);
    const ModelConfig read = read_checkpoint_model_config(path);
    EXPECT_EQ(read, config);
    std::vector<float> loaded(params.size());
    load_model_parameters(path, read, loaded.data());
    EXPECT_TRUE(same_bits(params, loaded));
    expect_input_error([&] { verify_parameter_group(Hdf5File::open_read_only(path), "/model", config); },
                       {path, "/model/embed/weight", "no checksum", "cannot be verified"});
  }
}

TEST_F(CheckpointTest, VerificationPassesAnIntactFile) {
  const ModelConfig config = sliceable_config(/*tie_embeddings=*/false);
  const std::string path = dir_.file("model.h5");
  save_small(path, config);
  EXPECT_NO_THROW(verify_parameter_group(Hdf5File::open_read_only(path), "/model", config));
}

// SPEC §7 stores float32; any other type (which HDF5 would convert on reading) is refused, naming both.
TEST_F(CheckpointTest, OtherFloatTypesAreRejected) {
  const ModelConfig config = sliceable_config(/*tie_embeddings=*/false);
  const std::string path = dir_.file("model.h5");
  const std::vector<float> params = save_small(path, config);
  replace_dataset(path, "/model/layers/1/ffn/fc1/weight", parameter_values(config, params, "layers/1/ffn/fc1/weight"),
                  float16_type(), checksummed_chunks(24, 8), 24);
  expect_refused_everywhere(path, config, {path, "/model/layers/1/ffn/fc1/weight", "float16", "float32"});

  write_foreign_checkpoint(path, config, params, kForeignYaml, /*as_float64=*/true, false);
  expect_refused_everywhere(path, config, {path, "/model/embed/weight", "float64", "float32"});
}

// A dataset whose chunks are not all stored reads back with fill values (zeros) for the missing ones, and no
// checksum is checked for them: the file is damaged (a few flipped bits in the chunk index do this).
TEST_F(CheckpointTest, UnstoredChunksAreReportedAsDamage) {
  const ModelConfig config = sliceable_config(/*tie_embeddings=*/false);
  const std::string path = dir_.file("model.h5");
  for (const hsize_t written_rows : {0, 10, 30}) {  // of 38, in chunks of 10 rows: 0, 1 or 3 of 4 chunks stored
    SCOPED_TRACE(written_rows);
    const std::vector<float> params = save_small(path, config);
    replace_dataset(path, "/model/embed/weight", parameter_values(config, params, "embed/weight"),
                    H5::PredType::IEEE_F32LE, checksummed_chunks(10, 8), written_rows);
    const std::string stored = std::to_string(written_rows / 10) + " of 4 chunks";
    expect_refused_everywhere(path, config, {path, "/model/embed/weight", stored, "damaged"});
  }
  // Written in full, the same layout loads.
  const std::vector<float> params = save_small(path, config);
  replace_dataset(path, "/model/embed/weight", parameter_values(config, params, "embed/weight"),
                  H5::PredType::IEEE_F32LE, checksummed_chunks(10, 8), 38);
  std::vector<float> loaded(params.size());
  load_model_parameters(path, config, loaded.data());
  EXPECT_TRUE(same_bits(params, loaded));
  EXPECT_NO_THROW(verify_parameter_group(Hdf5File::open_read_only(path), "/model", config));

  // A contiguous dataset never written has no storage at all, in a file without checksums too.
  write_foreign_checkpoint(path, config, params, kForeignYaml, /*as_float64=*/false, false);
  replace_dataset(path, "/model/layers/0/ffn/fc2/weight", parameter_values(config, params, "layers/0/ffn/fc2/weight"),
                  H5::PredType::IEEE_F32LE, H5::DSetCreatPropList::DEFAULT, 0);
  expect_load_error(path, config, {path, "/model/layers/0/ffn/fc2/weight", "not stored", "damaged"});
}

// Our writer checksums every dataset: one without a checksum among checksummed ones is damage, not a file
// written by another program.
TEST_F(CheckpointTest, DatasetWithoutChecksumAmongChecksummedOnesIsDamage) {
  const ModelConfig config = sliceable_config();
  const std::string path = dir_.file("model.h5");
  const std::vector<float> params = save_small(path, config);
  replace_dataset(path, "/model/layers/0/attn/out_proj/weight",
                  parameter_values(config, params, "layers/0/attn/out_proj/weight"), H5::PredType::IEEE_F32LE,
                  H5::DSetCreatPropList::DEFAULT, 8);
  expect_refused_everywhere(path, config, {path, "/model/layers/0/attn/out_proj/weight", "checksum", "damaged"});
}

// NaN and infinities pass the checksum (they were written so), but no trained model holds them.
TEST_F(CheckpointTest, NonFiniteValuesAreRejected) {
  const ModelConfig config = sliceable_config();
  const std::string path = dir_.file("model.h5");
  const ParameterTable table(config);
  const ParameterInfo& fc2 = table.entries()[table.find("layers/1/ffn/fc2/weight")];  // [8, 24], split by columns
  for (const float bad : {NAN, INFINITY, -INFINITY}) {
    SCOPED_TRACE(bad);
    std::vector<float> params = random_values(config, 1);
    params[fc2.offset + 3 * 24 + 20] = bad;  // row 3, column 20: rank 1's half
    save_model_checkpoint(path, config, params.data());
    expect_refused_everywhere(
        path, config, {path, "/model/layers/1/ffn/fc2/weight", "non-finite", fmt::format("{}", bad)}, {1});
    const ParameterTable rank0(config, 0, 2);  // the other half reads
    std::vector<float> local(rank0.total_elements());
    EXPECT_NO_THROW(load_model_parameters(path, config, rank0, local.data()));
  }
}

TEST_F(CheckpointTest, MissingDatasetIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  save_small(path, config);
  edit_file(path, [](H5::H5File& file) { file.unlink("/model/final_norm/weight"); });
  expect_load_error(path, config, {path, "/model/final_norm/weight", "missing", "[8]"});
  // A tied checkpoint has no output head for an untied model.
  save_small(path, config);
  expect_load_error(path, small_config(/*tie_embeddings=*/false), {path, "/model/lm_head/weight", "missing"});
}

TEST_F(CheckpointTest, WrongShapeIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  save_small(path, config);
  edit_file(path, [](H5::H5File& file) {
    file.unlink("/model/layers/1/attn/out_proj/weight");
    add_float_dataset(file, "/model/layers/1/attn/out_proj/weight", {8, 7});
  });
  expect_load_error(path, config,
                    {path, "/model/layers/1/attn/out_proj/weight", "expected shape [8, 8], found [8, 7]"});
  // A model without recurrence expects [4d, d] input projections.
  save_small(path, config);
  expect_load_error(path, small_config(true, /*recurrence=*/false),
                    {path, "/model/layers/0/attn/in_proj/weight", "expected shape [32, 8], found [40, 8]"});
}

TEST_F(CheckpointTest, NonFloatDatasetIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  save_small(path, config);
  edit_file(path, [](H5::H5File& file) {
    file.unlink("/model/final_norm/weight");
    const hsize_t n = 8;
    const std::vector<int32_t> ones(n, 1);
    file.createDataSet("/model/final_norm/weight", H5::PredType::STD_I32LE, H5::DataSpace(1, &n))
        .write(ones.data(), H5::PredType::NATIVE_INT32);
  });
  expect_load_error(path, config, {path, "/model/final_norm/weight", "int32", "expected float32"});
}

TEST_F(CheckpointTest, ExtraDatasetIsRejected) {
  const std::string path = dir_.file("model.h5");
  save_small(path, small_config(/*tie_embeddings=*/false));
  expect_load_error(path, small_config(), {path, "/model/lm_head/weight", "not in the model's parameter table"});

  save_small(path, small_config());
  edit_file(path, [](H5::H5File& file) { add_float_dataset(file, "/model/layers/0/attn/bias", {8}); });
  expect_load_error(path, small_config(), {path, "/model/layers/0/attn/bias"});
}

TEST_F(CheckpointTest, MissingConfigAttributeIsRejected) {
  const std::string path = dir_.file("model.h5");
  save_small(path, small_config());
  edit_file(path, [](H5::H5File& file) { file.openGroup("/model").removeAttr("config"); });
  expect_input_error([&] { read_checkpoint_model_config(path); }, {path, "/model@config", "no such attribute"});
}

TEST_F(CheckpointTest, NullVariableLengthConfigIsRejectedNotCrashedOn) {
  // A damaged (or odd) file can hold a variable-length string whose pointer reads back null; HDF5's C++
  // wrapper would pass it to strlen.
  const std::string path = dir_.file("model.h5");
  save_small(path, small_config());
  edit_file(path, [](H5::H5File& file) {
    H5::Group model = file.openGroup("/model");
    model.removeAttr("config");
    const H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
    const char* null_string = nullptr;
    model.createAttribute("config", type, H5::DataSpace(H5S_SCALAR)).write(type, &null_string);
  });
  expect_input_error([&] { read_checkpoint_model_config(path); }, {path, "/model@config", "no string"});
}

TEST_F(CheckpointTest, FileWithoutModelGroupIsRejected) {
  const std::string path = dir_.file("other.h5");
  H5::H5File(path, H5F_ACC_TRUNC).createGroup("/other");
  expect_input_error([&] { read_checkpoint_model_config(path); }, {path, "no /model group"});
  expect_load_error(path, small_config(), {path, "no /model group"});
}

TEST_F(CheckpointTest, NotAnHdf5FileIsRejected) {
  const std::string path = dir_.file("notes.h5");
  write_bytes(path, "vocab_size: 37\nthis is not HDF5\n");
  expect_input_error([&] { read_checkpoint_model_config(path); }, {path, "not an HDF5 file"});
  expect_load_error(path, small_config(), {path, "not an HDF5 file"});
  expect_input_error([&] { read_checkpoint_model_config(dir_.file("absent.h5")); },
                     {dir_.file("absent.h5"), "no such file"});
}

TEST_F(CheckpointTest, TruncatedFileIsRejected) {
  const std::string path = dir_.file("model.h5");
  save_small(path, small_config());
  const std::string cut = dir_.file("cut.h5");
  write_first_half(path, cut);
  expect_input_error([&] { read_checkpoint_model_config(cut); }, {cut, "truncated"});
  expect_load_error(cut, small_config(), {cut, "truncated"});
}

TEST_F(CheckpointTest, FlippedByteInDataIsReportedAsDamage) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  const std::vector<float> params = save_small(path, config);
  ASSERT_NO_FATAL_FAILURE(flip_byte_in_data(path, config, params, "layers/1/ffn/fc1/weight"));
  expect_load_error(path, config, {path, "/model/layers/1/ffn/fc1/weight", "damaged"});
}

TEST_F(CheckpointTest, WriteIntoMissingDirectoryFailsCleanly) {
  const std::string path = dir_.file("absent/model.h5");
  const ModelConfig config = small_config();
  const std::vector<float> params = random_values(config, 1);
  expect_input_error([&] { save_model_checkpoint(path, config, params.data()); }, {path + ".tmp"});
  EXPECT_TRUE(dir_.entries().empty());
}

TEST_F(CheckpointTest, FailedWriteLeavesExistingCheckpointUntouched) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  const std::vector<float> first = save_small(path, config, 1);
  const std::string before = read_bytes(path);

  // A non-empty directory where the temporary file should go makes the write fail.
  fs::create_directory(path + ".tmp");
  write_bytes(path + ".tmp/blocker", "x");
  const std::vector<float> second = random_values(config, 2);
  expect_input_error([&] { save_model_checkpoint(path, config, second.data()); }, {path + ".tmp"});
  EXPECT_EQ(read_bytes(path), before);

  fs::remove_all(path + ".tmp");
  save_model_checkpoint(path, config, second.data());
  std::vector<float> loaded(second.size());
  load_model_parameters(path, config, loaded.data());
  EXPECT_TRUE(same_bits(second, loaded));
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"model.h5"});
}

TEST(Hdf5FileTest, AttributesGroupsAndListing) {
  const TempDir dir;
  const std::string path = dir.file("state.h5");
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  write_hdf5_atomically(path, [&](Hdf5File& file) {
    file.create_group("/train/loader");
    file.write_int64_attribute("/train", "step", -1234567890123);
    file.write_double_attribute("/train", "lr", 3.0e-4);
    file.write_string_attribute("/", "note", "h\xC3\xA9llo \xE2\x9C\x93\nline two");
    file.write_floats("/optim/m/a/weight", values.data(), {2, 3});
    file.write_floats("/optim/m/b", values.data(), {6});
    file.write_int64_attribute("/optim/m/b", "version", 3);
  });

  const Hdf5File file = Hdf5File::open_read_only(path);
  EXPECT_EQ(file.read_int64_attribute("/train", "step"), -1234567890123);
  EXPECT_EQ(file.read_double_attribute("/train", "lr"), 3.0e-4);
  EXPECT_EQ(file.read_string_attribute("/", "note"), "h\xC3\xA9llo \xE2\x9C\x93\nline two");
  {  // text is stored as fixed-length strings, which HDF5 reads without its global heap
    const H5::H5File raw(path, H5F_ACC_RDONLY);
    EXPECT_FALSE(raw.openGroup("/").openAttribute("note").getStrType().isVariableStr());
  }
  EXPECT_EQ(file.read_int64_attribute("/optim/m/b", "version"), 3);
  EXPECT_TRUE(file.has_group("/train/loader"));
  EXPECT_FALSE(file.has_group("/optim/m/b"));
  EXPECT_TRUE(file.has_dataset("/optim/m/b"));
  EXPECT_FALSE(file.has_dataset("/optim/m/b/c"));  // a path through a dataset
  EXPECT_FALSE(file.has_dataset("/nowhere/x"));
  EXPECT_EQ(file.list_datasets("/optim"), (std::vector<std::string>{"m/a/weight", "m/b"}));
  EXPECT_EQ(file.dataset_shape("/optim/m/a/weight"), (std::vector<int64_t>{2, 3}));

  std::vector<float> read(6);
  file.read_floats("/optim/m/a/weight", read.data(), 6);
  EXPECT_EQ(read, values);
  expect_input_error([&] { file.read_floats("/optim/m/b", read.data(), 5); }, {path, "/optim/m/b", "6 elements"});
  expect_input_error([&] { file.read_int64_attribute("/train", "tokens"); }, {path, "/train@tokens"});
  expect_input_error([&] { file.read_int64_attribute("/", "note"); }, {path, "/@note", "not an integer"});
  expect_input_error([&] { file.read_string_attribute("/missing", "x"); }, {path, "/missing", "no such group"});
}

// A large dataset is one block at a page boundary, its CRC-32 that of all its bytes (computed on several
// threads); any part of it reads back as the naive copy of its rows and columns.
TEST(Hdf5FileTest, LargeDatasetsAreOneAlignedBlockWithTheirCrc32) {
  const TempDir dir;
  const std::string path = dir.file("big.h5");
  const int64_t rows = 6000, cols = 1000;  // 24 MB: several checksum blocks
  std::vector<float> values(rows * cols);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  write_hdf5_atomically(path, [&](Hdf5File& file) {
    file.write_floats("/small", values.data(), {3});
    file.write_floats("/big", values.data(), {rows, cols});
  });
  {
    const H5::H5File raw(path, H5F_ACC_RDONLY);
    const H5::DataSet big = raw.openDataSet("/big");
    EXPECT_EQ(big.getCreatePlist().getLayout(), H5D_CONTIGUOUS);
    EXPECT_EQ(big.getOffset() % 4096, 0u);
    EXPECT_EQ(crc32_attribute(big), zlib_crc32(values.data(), rows * cols));
  }
  const Hdf5File file = Hdf5File::open_read_only(path);
  std::vector<float> read(values.size());
  file.read_floats("/big", read.data(), static_cast<int64_t>(read.size()));
  EXPECT_EQ(read, values);
  // Rows [100, 300) of each half, columns [10, 40).
  const Hdf5File::Part part{2, 100, 400, 10, 30};
  std::vector<float> got(400 * 30), expected;
  file.read_floats("/big", got.data(), part);
  for (int64_t block = 0; block < 2; ++block)
    for (int64_t r = 100; r < 300; ++r)
      for (int64_t c = 10; c < 40; ++c) expected.push_back(values[(block * 3000 + r) * cols + c]);
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace ratplus::test
