// Tests of training checkpoints (SPEC §7): bitwise round trips of parameters, AdamW moments and every
// /train attribute; rejection of inference, damaged, truncated and mismatched files (a step that
// contradicts the file name, non-finite or unstored optimizer state among them); and the naming, listing
// and pruning of a checkpoint directory.
#include <H5Cpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "checkpoint/hdf5_file.h"
#include "checkpoint/model_checkpoint.h"
#include "checkpoint/training_checkpoint.h"
#include "checkpoint_test_util.h"
#include "model/parameters.h"
#include "core/temp_dir.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

// Parameters and both moments of a model, as a trainer holds them.
struct TrainingBuffers {
  std::vector<float> params, m, v;

  explicit TrainingBuffers(const ModelConfig& config, unsigned seed = 1)
      : params(random_values(config, seed)),
        m(random_values(config, seed + 100)),
        v(random_values(config, seed + 200)) {
    for (float& x : v) x = x * x;
  }
  // The checkpoint's view of the three groups (0 = parameters, 1 = m, 2 = v).
  std::vector<float>& group(int g) { return g == 0 ? params : g == 1 ? m : v; }
  CheckpointValues values() {
    return [this](int g) { return group(g); };
  }
  CheckpointSink sink() {
    return [this](int g, const std::vector<float>& values) { group(g) = values; };
  }
  static TrainingBuffers empty_like(const TrainingBuffers& other) {
    TrainingBuffers buffers = other;
    for (auto* values : {&buffers.params, &buffers.m, &buffers.v}) std::fill(values->begin(), values->end(), -7.0f);
    return buffers;
  }
};

TrainingState sample_state() {
  TrainingState state;
  state.step = 123456789012;
  state.tokens = (int64_t{1} << 53) + 1;  // not representable as a double
  state.optimizer_updates = 246913578024;
  state.skipped_updates = 3;
  state.config_yaml = "model:\n  d_model: 8\ntrain:\n  seed: 17275436393656397312\n  note: \"h\xC3\xA9llo\"\n";
  state.loader_positions = {5, 0, (int64_t{1} << 53) + 1, std::numeric_limits<int64_t>::max()};
  state.seed = 17275436393656397312ull;  // above 2^63
  return state;
}

void expect_same_state(const TrainingState& a, const TrainingState& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.optimizer_updates, b.optimizer_updates);
  EXPECT_EQ(a.skipped_updates, b.skipped_updates);
  EXPECT_EQ(a.config_yaml, b.config_yaml);
  EXPECT_EQ(a.loader_positions, b.loader_positions);
  EXPECT_EQ(a.seed, b.seed);
}

class TrainingCheckpointTest : public ::testing::Test {
 protected:
  TrainingBuffers save(const std::string& path, const ModelConfig& config, const TrainingState& state) {
    TrainingBuffers saved(config);
    save_training_checkpoint(path, config, saved.values(), state);
    return saved;
  }

  void expect_load_error(const std::string& path, const ModelConfig& config,
                         const std::vector<std::string>& fragments) {
    TrainingBuffers loaded(config);
    expect_input_error(
        [&] { load_training_checkpoint(path, config, ParameterTable(config), loaded.sink()); },
        fragments);
  }

  TempDir dir_;
};

TEST_F(TrainingCheckpointTest, RoundTripIsBitwiseExact) {
  const ModelConfig config = small_config();
  const TrainingState state = sample_state();
  const std::string path = dir_.file(checkpoint_file_name(state.step));
  TrainingBuffers saved(config);
  saved.params[0] = -0.0f;
  saved.params[1] = std::numeric_limits<float>::denorm_min();
  saved.m[2] = std::numeric_limits<float>::lowest();
  saved.m[3] = std::numeric_limits<float>::max();
  save_training_checkpoint(path, config, saved.values(), state);
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"step_123456789012.h5"});  // no temporary left behind

  TrainingBuffers loaded = TrainingBuffers::empty_like(saved);
  const TrainingState read =
      load_training_checkpoint(path, config, ParameterTable(config), loaded.sink());
  EXPECT_TRUE(same_bits(saved.params, loaded.params));
  EXPECT_TRUE(same_bits(saved.m, loaded.m));
  EXPECT_TRUE(same_bits(saved.v, loaded.v));
  expect_same_state(read, state);

  // The /model group alone is a valid inference checkpoint.
  std::vector<float> params(saved.params.size());
  load_model_parameters(path, read_checkpoint_model_config(path), params.data());
  EXPECT_TRUE(same_bits(saved.params, params));
}

TEST_F(TrainingCheckpointTest, FileLayoutFollowsTheSpec) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  save(path, config, sample_state());
  const Hdf5File file = Hdf5File::open_read_only(path);
  for (const std::string group : {"/model", "/optim/m", "/optim/v"}) {
    EXPECT_EQ(file.dataset_shape(group + "/embed/weight"), (std::vector<int64_t>{37, 8}));
    EXPECT_EQ(file.dataset_shape(group + "/layers/1/attn/in_proj/weight"), (std::vector<int64_t>{40, 8}));
    EXPECT_EQ(file.dataset_shape(group + "/final_norm/weight"), (std::vector<int64_t>{8}));
    EXPECT_EQ(file.list_datasets(group).size(), ParameterTable(config).entries().size());
  }
  EXPECT_EQ(file.read_int64_attribute("/train", "format_version"), 1);
  EXPECT_EQ(file.read_int64_attribute("/train", "step"), 123456789012);
  EXPECT_EQ(file.read_string_attribute("/train", "config"), sample_state().config_yaml);

  const H5::H5File raw(path, H5F_ACC_RDONLY);
  const H5::Attribute seed = raw.openGroup("/train").openAttribute("seed");
  EXPECT_EQ(seed.getIntType().getSign(), H5T_SGN_NONE);
  EXPECT_EQ(seed.getIntType().getSize(), 8u);
  const H5::DataSet moments = raw.openDataSet("/optim/v/embed/weight");
  EXPECT_EQ(moments.getCreatePlist().getLayout(), H5D_CONTIGUOUS);
  EXPECT_TRUE(moments.attrExists("crc32"));
}

TEST_F(TrainingCheckpointTest, EmptyStateRoundTrips) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  const TrainingBuffers saved = save(path, config, TrainingState{});
  TrainingBuffers loaded = TrainingBuffers::empty_like(saved);
  const TrainingState read =
      load_training_checkpoint(path, config, ParameterTable(config), loaded.sink());
  expect_same_state(read, TrainingState{});
  EXPECT_TRUE(same_bits(saved.v, loaded.v));
}

TEST_F(TrainingCheckpointTest, InferenceCheckpointIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("model.h5");
  save_model_checkpoint(path, config, random_values(config, 1).data());
  expect_load_error(path, config, {path, "not a training checkpoint"});
  expect_input_error([&] { read_training_state(Hdf5File::open_read_only(path)); },
                     {path, "/train", "not a training checkpoint"});
}

TEST_F(TrainingCheckpointTest, MissingPartsAreNamed) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  save(path, config, sample_state());
  edit_file(path, [](H5::H5File& file) { file.unlink("/optim/m/layers/0/ffn/fc2/weight"); });
  expect_load_error(path, config, {path, "/optim/m/layers/0/ffn/fc2/weight", "missing"});

  save(path, config, sample_state());
  edit_file(path, [](H5::H5File& file) { file.openGroup("/train").removeAttr("seed"); });
  expect_load_error(path, config, {path, "/train@seed"});

  save(path, config, sample_state());
  edit_file(path, [](H5::H5File& file) { file.unlink("/train"); });
  expect_load_error(path, config, {path, "/train", "not a training checkpoint"});
}

TEST_F(TrainingCheckpointTest, FlippedByteInOptimizerStateIsReportedAsDamage) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  const TrainingBuffers saved = save(path, config, sample_state());
  ASSERT_NO_FATAL_FAILURE(flip_byte_in_data(path, config, saved.v, "layers/1/ffn/fc1/weight"));
  expect_load_error(path, config, {path, "/optim/v/layers/1/ffn/fc1/weight", "damaged"});
}

TEST_F(TrainingCheckpointTest, NonFiniteOptimizerStateIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  TrainingBuffers saved(config);
  const ParameterTable table(config);
  saved.v[table.entries()[table.find("layers/0/attn/in_proj/weight")].offset + 17] = NAN;
  save_training_checkpoint(path, config, saved.values(), sample_state());
  expect_load_error(path, config, {path, "/optim/v/layers/0/attn/in_proj/weight", "non-finite", "nan"});
  std::vector<float> params(saved.params.size());
  EXPECT_NO_THROW(load_model_parameters(path, config, params.data()));  // /model alone is intact
}

TEST_F(TrainingCheckpointTest, UnstoredChunksOfOptimizerStateAreDamage) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  const TrainingBuffers saved = save(path, config, sample_state());
  replace_dataset(path, "/optim/m/layers/1/ffn/fc1/weight",
                  parameter_values(config, saved.m, "layers/1/ffn/fc1/weight"), H5::PredType::IEEE_F32LE,
                  checksummed_chunks(8, 8), 8);
  expect_load_error(path, config, {path, "/optim/m/layers/1/ffn/fc1/weight", "1 of 3 chunks", "damaged"});
}

// A checkpoint file's name says its step; a /train@step that disagrees is damage, whichever is larger.
TEST_F(TrainingCheckpointTest, StepContradictingTheFileNameIsDamage) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file(checkpoint_file_name(100));
  TrainingState state = sample_state();
  state.step = 100;
  save(path, config, state);
  TrainingBuffers loaded(config);
  EXPECT_EQ(load_training_checkpoint(path, config, ParameterTable(config), loaded.sink()).step, 100);
  for (const int64_t wrong : {0, 99, 99999}) {
    edit_file(path, [&](H5::H5File& file) {
      file.openGroup("/train").openAttribute("step").write(H5::PredType::NATIVE_INT64, &wrong);
    });
    const std::vector<std::string> fragments = {path, "/train@step", std::to_string(wrong), "step_00000100.h5", "100"};
    expect_load_error(path, config, fragments);
    expect_input_error([&] { read_training_state(Hdf5File::open_read_only(path)); }, fragments);
  }
  // Under any other name, the attribute alone says the step.
  fs::copy_file(path, dir_.file("copy.h5"));
  EXPECT_EQ(load_training_checkpoint(dir_.file("copy.h5"), config, ParameterTable(config), loaded.sink()).step, 99999);
}

TEST_F(TrainingCheckpointTest, TruncatedFileIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  save(path, config, sample_state());
  write_first_half(path, path);
  expect_load_error(path, config, {path, "truncated"});
}

TEST_F(TrainingCheckpointTest, WrongModelConfigIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  save(path, config, sample_state());

  ModelConfig wider = config;
  wider.d_ffn = 32;
  expect_load_error(path, wider, {path, "/model/layers/0/ffn/fc1/weight", "expected shape [32, 8], found [24, 8]"});

  ModelConfig other_eps = config;
  other_eps.norm_eps = 1e-6;
  expect_load_error(path, other_eps, {path, "/model@config", "norm_eps"});

  ModelConfig other_init = config;  // init_std does not shape a trained model
  other_init.init_std = 0.5;
  TrainingBuffers loaded(config);
  EXPECT_NO_THROW(load_training_checkpoint(path, other_init, ParameterTable(other_init), loaded.sink()));
}

TEST_F(TrainingCheckpointTest, UnsupportedFormatVersionIsRejected) {
  const ModelConfig config = small_config();
  const std::string path = dir_.file("ck.h5");
  save(path, config, sample_state());
  edit_file(path, [](H5::H5File& file) {
    const int64_t version = 2;
    file.openGroup("/train").openAttribute("format_version").write(H5::PredType::NATIVE_INT64, &version);
  });
  expect_load_error(path, config, {path, "/train@format_version", "version 2"});
}

TEST(Hdf5AttributeTest, UnsignedAndArrayAttributes) {
  const TempDir dir;
  const std::string path = dir.file("attributes.h5");
  write_hdf5_atomically(path, [](Hdf5File& file) {
    file.create_group("/g");
    file.write_uint64_attribute("/g", "big", std::numeric_limits<uint64_t>::max());
    file.write_int64_attribute("/g", "signed", 42);
    file.write_int64_attribute("/g", "negative", -1);
    file.write_int64_array_attribute("/g", "list", {-3, 0, std::numeric_limits<int64_t>::min()});
    file.write_int64_array_attribute("/g", "none", {});
  });
  const Hdf5File file = Hdf5File::open_read_only(path);
  EXPECT_EQ(file.read_uint64_attribute("/g", "big"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(file.read_uint64_attribute("/g", "signed"), 42u);
  expect_input_error([&] { file.read_uint64_attribute("/g", "negative"); }, {path, "/g@negative", "negative"});
  EXPECT_EQ(file.read_int64_array_attribute("/g", "list"),
            (std::vector<int64_t>{-3, 0, std::numeric_limits<int64_t>::min()}));
  EXPECT_TRUE(file.read_int64_array_attribute("/g", "none").empty());
  EXPECT_EQ(file.read_int64_array_attribute("/g", "signed"), std::vector<int64_t>{42});
  expect_input_error([&] { file.read_int64_attribute("/g", "list"); }, {path, "/g@list", "not a single value"});
}

TEST(CheckpointFilesTest, FileNames) {
  EXPECT_EQ(checkpoint_file_name(0), "step_00000000.h5");
  EXPECT_EQ(checkpoint_file_name(100), "step_00000100.h5");
  EXPECT_EQ(checkpoint_file_name(99999999), "step_99999999.h5");
  EXPECT_EQ(checkpoint_file_name(123456789), "step_123456789.h5");
}

TEST(CheckpointFilesTest, ListingIsNewestFirstAndIgnoresOtherFiles) {
  const TempDir dir;
  EXPECT_TRUE(list_checkpoints(dir.file("absent")).empty());
  for (const int64_t step : {5, 100, 20, 123456789}) write_bytes(dir.file(checkpoint_file_name(step)), "x");
  for (const std::string name : {"step_00000007.h5.tmp", "step_7.h5", "step_000000007.h5", "step_-0000007.h5",
                                 "step_00000030.h5.bak", "xstep_00000040.h5", "notes.txt", "step_.h5"})
    write_bytes(dir.file(name), "x");
  fs::create_directory(dir.file("step_00000050.h5"));
  EXPECT_EQ(list_checkpoints(dir.path()),
            (std::vector<std::string>{dir.file("step_123456789.h5"), dir.file("step_00000100.h5"),
                                      dir.file("step_00000020.h5"), dir.file("step_00000005.h5")}));
  expect_input_error([&] { list_checkpoints(dir.file("notes.txt")); }, {dir.file("notes.txt")});
}

TEST(CheckpointFilesTest, PruneKeepsTheNewest) {
  const TempDir dir;
  for (const int64_t step : {3, 1, 5, 2, 4}) write_bytes(dir.file(checkpoint_file_name(step)), "x");
  write_bytes(dir.file("step_00000009.h5.tmp"), "x");
  write_bytes(dir.file("notes.txt"), "x");

  prune_checkpoints(dir.path(), 7);
  EXPECT_EQ(list_checkpoints(dir.path()).size(), 5u);
  prune_checkpoints(dir.path(), 2);
  EXPECT_EQ(dir.entries(),
            (std::vector<std::string>{"notes.txt", "step_00000004.h5", "step_00000005.h5", "step_00000009.h5.tmp"}));
  prune_checkpoints(dir.path(), 0);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"notes.txt", "step_00000009.h5.tmp"}));
  prune_checkpoints(dir.file("absent"), 1);
}

}  // namespace
}  // namespace ratplus::test
