// The training loop: schedule values, AdamW and clipping against a hand computation, joint updates,
// learning on synthetic data, non-finite handling, checkpoint resume (bitwise) and damaged checkpoints, the
// planned and signalled stops, and the checkpoint directory (locked against a second run, checked at the start).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <unistd.h>
#include <utility>
#include <vector>

#include "checkpoint/training_checkpoint.h"
#include "core/buffer.h"
#include "core/config.h"
#include "data/synthetic.h"
#include "kernels/optimizer.h"
#include "core/temp_dir.h"
#include "trainer/schedule.h"
#include "trainer/trainer.h"
#include "model_test_util.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

TEST(Schedule, WarmupThenCosineAsSpecified) {
  OptimConfig o;
  o.lr = 1e-3;
  o.min_lr = 1e-5;
  o.warmup = 0.1;
  // n = 100 → w = 10: lr(s) = peak (s + 1) / 10 for s < 10, then cosine over 90 steps.
  EXPECT_DOUBLE_EQ(learning_rate(o, 100, 0), 1e-4);
  EXPECT_DOUBLE_EQ(learning_rate(o, 100, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(o, 100, 10), 1e-3);
  EXPECT_NEAR(learning_rate(o, 100, 55), 1e-5 + (1e-3 - 1e-5) * 0.5, 1e-15);
  EXPECT_NEAR(learning_rate(o, 100, 99), 1e-5 + (1e-3 - 1e-5) * (1 + std::cos(std::numbers::pi * 89 / 90)) / 2, 1e-15);
  o.warmup = 0;
  EXPECT_DOUBLE_EQ(learning_rate(o, 100, 0), 1e-3);
}

TEST(AdamW, TwoUpdatesMatchAHandComputation) {
  std::vector<float> p = {0.5f, -1.0f, 2.0f}, g = {0.1f, -0.2f, 0.3f}, m(3, 0.0f), v(3, 0.0f);
  auto flat = [](std::vector<float>& x) { return Tensor{x.data(), 1, 3, 3, DType::f32, Device::cpu}; };
  AdamWStep s;
  s.lr = 0.01;
  s.beta1 = 0.9;
  s.beta2 = 0.95;
  s.eps = 1e-8;
  s.weight_decay = 0.1;
  s.grad_scale = 0.5;
  std::vector<double> ep = {0.5, -1.0, 2.0}, em(3, 0), ev(3, 0);
  for (int64_t t = 1; t <= 2; ++t) {
    s.t = t;
    adamw_update(flat(p), flat(g), flat(m), flat(v), s);
    for (int i = 0; i < 3; ++i) {
      const double gi = 0.5 * g[i];
      ep[i] *= 1 - 0.01 * 0.1;
      em[i] = 0.9 * em[i] + 0.1 * gi;
      ev[i] = 0.95 * ev[i] + 0.05 * gi * gi;
      ep[i] -= 0.01 * (em[i] / (1 - std::pow(0.9, t))) / (std::sqrt(ev[i] / (1 - std::pow(0.95, t))) + 1e-8);
      EXPECT_NEAR(p[i], ep[i], 1e-6) << "t " << t << " i " << i;
      EXPECT_NEAR(m[i], em[i], 1e-7);
      EXPECT_NEAR(v[i], ev[i], 1e-9);
    }
  }
}

// A temporary directory with a synthetic shard and a tiny config pointing at it.
class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_llmc_shard(dir_.file("train.bin"), synthesize_tokens(60000, 64, 1), 1);
    write_llmc_shard(dir_.file("val.bin"), synthesize_tokens(8000, 64, 2), 1);
  }

  ExperimentConfig config(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> o = {"model.vocab_size=64", "model.d_model=32", "model.n_heads=2", "model.d_ffn=64",
                                  "data.seq_len=32",     "data.eos_id=0",    "train.global_batch=4",
                                  "train.micro_batch=2", "train.steps=8",    "train.arl_dilation=4",
                                  "train.log_every=100", "optim.lr=3e-3",    "optim.warmup=0.1",
                                  "data.train=" + dir_.file("train.bin"),
                                  "data.val=" + dir_.file("val.bin"),
                                  "checkpoint.dir=" + dir_.file("ckpt")};
    o.insert(o.end(), extra.begin(), extra.end());
    return parse_experiment_config("", "test", o);
  }

  // The records of a train.metrics_jsonl file in the test's folder.
  std::vector<nlohmann::json> jsonl_records(const std::string& name) const {
    std::ifstream in(dir_.file(name));
    std::vector<nlohmann::json> records;
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
  }

  TempDir dir_;
};

TEST_F(TrainerTest, APlanThatDoesNotFitIsRefusedBeforeAllocating) {
  // 7.6B parameters with their optimizer state need far more than this machine has.
  try {
    Trainer trainer(config({"model.vocab_size=32000", "model.d_model=4096", "model.n_heads=32", "model.d_ffn=16384",
                            "model.n_layers=32", "data.eos_id=-1"}));
    FAIL() << "a 7.6B model was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("GiB are available"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, JointObjectiveMakesTwoUpdatesPerBatch) {
  Trainer trainer(config({"train.objective=joint"}));
  ASSERT_EQ(trainer.passes().size(), 2u);
  EXPECT_EQ(trainer.passes()[0].name, "sparse");
  trainer.step();
  EXPECT_EQ(trainer.state().step, 1);
  EXPECT_EQ(trainer.state().optimizer_updates, 2);
  EXPECT_EQ(trainer.state().tokens, 4 * 32);
}

TEST_F(TrainerTest, DenseUpdateMatchesHandComputedClippedAdamW) {
  const ExperimentConfig c = config({"train.objective=dense", "optim.grad_clip=0.05", "optim.weight_decay=0.1"});
  Trainer trainer(c);
  Model& model = trainer.model();
  const std::vector<float> before = model.get_parameters();
  // The gradient of the first batch, computed independently: windows 0..3 in two micro-batches.
  TokenStream data({dir_.file("train.bin")}, ShardFormat::automatic, 64);
  std::vector<int32_t> in(4 * 32), tg(4 * 32);
  for (int k = 0; k < 4; ++k) data.window(k, 32, 0, in.data() + k * 32, tg.data() + k * 32);
  const Gradients g(model);
  forward_backward(model, in.data(), tg.data(), 2, 32, Pattern::dense(), g, 0.5);
  forward_backward(model, in.data() + 64, tg.data() + 64, 2, 32, Pattern::dense(), g, 0.5);
  std::vector<double> grad(g.t.ptr<float>(), g.t.ptr<float>() + g.t.numel());
  double norm = 0;
  for (double x : grad) norm += x * x;
  norm = std::sqrt(norm);
  ASSERT_GT(norm, 0.05) << "the test needs clipping to be active";
  const double scale = 0.05 / (norm + 1e-6), lr = learning_rate(c.optim, c.train.steps, 0);
  trainer.step();
  const std::vector<float> after = model.get_parameters();
  for (size_t i = 0; i < after.size(); i += 97) {
    const double gi = scale * grad[i];
    const double m = 0.1 * gi, v = 0.05 * gi * gi;
    const double expected = before[i] * (1 - lr * 0.1) - lr * (m / 0.1) / (std::sqrt(v / 0.05) + 1e-8);
    ASSERT_NEAR(after[i], expected, 1e-6 + 1e-5 * std::abs(expected)) << "parameter " << i;
  }
}

TEST_F(TrainerTest, LossFallsOnLearnableSyntheticData) {
  Trainer trainer(config({"train.objective=dense", "train.steps=80", "optim.lr=1e-2"}));
  TokenStream val({dir_.file("val.bin")}, ShardFormat::automatic, 64);
  auto val_loss = [&] {
    std::vector<int32_t> in(8 * 32), tg(8 * 32);
    for (int k = 0; k < 8; ++k) val.window(k, 32, 0, in.data() + k * 32, tg.data() + k * 32);
    return batch_loss(trainer.model(), in.data(), tg.data(), 8, 32, Pattern::dense()).mean();
  };
  const double start = val_loss();
  for (int i = 0; i < 80; ++i) trainer.step();
  const double end = val_loss();
  EXPECT_LT(end, start - 0.2) << "validation loss went from " << start << " to " << end;
}

TEST_F(TrainerTest, NonFiniteUpdatesAreSkippedCountedAndEventuallyFatal) {
  Trainer trainer(config({"train.objective=dense", "train.max_nonfinite=2"}));
  Model& model = trainer.model();
  std::vector<float> params = model.get_parameters();
  const float saved = params[5];
  params[5] = NAN;
  model.set_parameters(params);
  trainer.step();
  EXPECT_EQ(trainer.state().skipped_updates, 1);
  EXPECT_EQ(trainer.state().optimizer_updates, 0);
  const std::vector<float> after = model.get_parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    if (i == 5) continue;
    ASSERT_EQ(after[i], params[i]) << "a skipped update changed parameter " << i;
  }
  params[5] = saved;
  model.set_parameters(params);
  trainer.step();
  EXPECT_EQ(trainer.state().optimizer_updates, 1);
  params = model.get_parameters();
  params[0] = INFINITY;
  model.set_parameters(params);
  trainer.step();
  EXPECT_THROW(trainer.step(), std::runtime_error);
  EXPECT_EQ(trainer.state().skipped_updates, 3);
}

TEST_F(TrainerTest, StoppedAndResumedRunIsBitwiseIdenticalToAStraightRun) {
  const std::vector<std::string> common = {"train.objective=joint", "data.order=random", "train.steps=7",
                                           "train.metrics_jsonl=" + dir_.file("straight.jsonl")};
  std::vector<float> straight;
  {
    Trainer trainer(config(common));
    EXPECT_EQ(trainer.run(), Trainer::Outcome::finished);
    straight = trainer.model().get_parameters();
  }
  std::vector<std::string> split = {"train.objective=joint", "data.order=random", "train.steps=7",
                                    "checkpoint.dir=" + dir_.file("split"),
                                    "train.metrics_jsonl=" + dir_.file("split.jsonl")};
  {
    std::vector<std::string> first = split;
    first.push_back("train.stop_after=3");
    Trainer trainer(config(first));
    EXPECT_EQ(trainer.run(), Trainer::Outcome::planned_stop);
    EXPECT_EQ(trainer.state().step, 3);
  }
  Trainer resumed(config(split));
  EXPECT_EQ(resumed.state().step, 3);
  EXPECT_EQ(resumed.run(), Trainer::Outcome::finished);
  EXPECT_EQ(resumed.state().optimizer_updates, 14);
  const std::vector<float> split_params = resumed.model().get_parameters();
  ASSERT_EQ(split_params.size(), straight.size());
  for (size_t i = 0; i < straight.size(); ++i) ASSERT_EQ(split_params[i], straight[i]) << "parameter " << i;
  // The logged records agree line by line, but for their times.
  const std::vector<nlohmann::json> a = jsonl_records("straight.jsonl"), b = jsonl_records("split.jsonl");
  ASSERT_EQ(a.size(), 14u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    nlohmann::json x = a[i], y = b[i];
    x.erase("time");
    y.erase("time");
    EXPECT_EQ(x, y) << "line " << i + 1;
  }
}

// Each train.metrics_jsonl record carries its wall-clock time; every validation adds a record of its losses
// after the updates of its step (its "step" counts the steps done; an update's is its batch index).
TEST_F(TrainerTest, MetricsJsonlRecordsCarryTimesAndValidationLosses) {
  const auto seconds = [] {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return std::chrono::duration<double>(now).count();
  };
  const double start = seconds();
  Trainer trainer(config({"train.objective=joint", "train.val_every=4", "train.val_batches=2",
                          "train.metrics_jsonl=" + dir_.file("log.jsonl")}));
  ASSERT_EQ(trainer.run(), Trainer::Outcome::finished);
  const double end = seconds();
  const std::vector<nlohmann::json> records = jsonl_records("log.jsonl");
  ASSERT_EQ(records.size(), 8u * 2 + 2);  // two passes per step, a validation at steps 4 and 8
  double last = start - 1e-3;
  std::vector<size_t> validations;
  for (size_t i = 0; i < records.size(); ++i) {
    const nlohmann::json& r = records[i];
    ASSERT_TRUE(r.contains("time")) << r;
    const double t = r["time"].get<double>();
    EXPECT_GE(t, last) << "line " << i + 1;
    EXPECT_LE(t, end + 1e-3) << "line " << i + 1;
    last = t;
    if (r.contains("validation")) validations.push_back(i);
  }
  ASSERT_EQ(validations, (std::vector<size_t>{8, 17}));
  for (const size_t i : validations) {
    const nlohmann::json& v = records[i];
    EXPECT_EQ(v["step"].get<int64_t>(), records[i - 1]["step"].get<int64_t>() + 1);  // steps done, batch index
    EXPECT_EQ(v["tokens"], records[i - 1]["tokens"]);
    ASSERT_EQ(v["validation"].size(), 2u) << v;
    for (const char* pattern : {"dense", "dilated:D=4"}) {
      const double loss = v["validation"][pattern].get<double>();
      EXPECT_TRUE(loss > 0 && loss < 2 * std::log(64.0)) << pattern << " " << loss;
    }
  }
}

// train.stop_after is a step number: a run resumed at it stops at once without writing anything (the same
// command stops again), and a raised or removed limit continues the run.
TEST_F(TrainerTest, StopAfterStopsAtItsStepUntilRaisedOrRemoved) {
  const auto run_until = [&](const std::string& stop_after) {
    Trainer trainer(config({"train.objective=dense", "train.steps=6", stop_after}));
    const Trainer::Outcome outcome = trainer.run();
    return std::pair(outcome, trainer.state().step);
  };
  EXPECT_EQ(run_until("train.stop_after=2"), std::pair(Trainer::Outcome::planned_stop, int64_t{2}));
  const std::vector<std::string> written = list_checkpoints(dir_.file("ckpt"));
  ASSERT_EQ(written.size(), 1u);
  const auto time = fs::last_write_time(written[0]);
  EXPECT_EQ(run_until("train.stop_after=2"), std::pair(Trainer::Outcome::planned_stop, int64_t{2}));
  EXPECT_EQ(list_checkpoints(dir_.file("ckpt")), written);
  EXPECT_EQ(fs::last_write_time(written[0]), time) << "the checkpoint it resumed from was written again";
  EXPECT_EQ(run_until("train.stop_after=4"), std::pair(Trainer::Outcome::planned_stop, int64_t{4}));
  EXPECT_EQ(run_until("train.stop_after=0"), std::pair(Trainer::Outcome::finished, int64_t{6}));
}

// A stop request (SIGTERM, SIGINT) is a preemption: a checkpoint to resume from, and the request is used up.
TEST_F(TrainerTest, AStopRequestEndsTheRunWithACheckpointOnce) {
  {
    Trainer trainer(config({"train.objective=dense", "train.steps=6"}));
    trainer.step();
    Trainer::request_stop();
    EXPECT_EQ(trainer.run(), Trainer::Outcome::preempted);
  }
  ASSERT_EQ(list_checkpoints(dir_.file("ckpt")).size(), 1u);
  EXPECT_EQ(fs::path(list_checkpoints(dir_.file("ckpt"))[0]).filename(), checkpoint_file_name(1));
  Trainer resumed(config({"train.objective=dense", "train.steps=6"}));
  EXPECT_EQ(resumed.run(), Trainer::Outcome::finished);
  EXPECT_EQ(resumed.state().step, 6);
}

TEST_F(TrainerTest, ASecondTrainerOnTheCheckpointDirIsRefused) {
  const Trainer first(config());
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  expect_input_error([&] { Trainer second(config()); },
                     {"checkpoint.dir", fmt::format("'{}' is in use", dir_.file("ckpt")),
                      fmt::format("process {} on host {}", getpid(), host)});
}

TEST_F(TrainerTest, ACheckpointDirThatCannotBeCreatedIsRefusedAtTheStart) {
  std::ofstream(dir_.file("file")) << "x";
  expect_input_error([&] { Trainer trainer(config({"checkpoint.dir=" + dir_.file("file/ck")})); },
                     {"checkpoint.dir", fmt::format("'{}'", dir_.file("file/ck")), "Not a directory"});
}

// A run whose model differs from the checkpoints in its directory stops rather than start over and prune them.
TEST_F(TrainerTest, CheckpointsOfAnotherModelStopTheRunAndStay) {
  const std::string dir = dir_.file("other_model");
  {
    Trainer trainer(config({"train.objective=dense", "train.steps=2", "checkpoint.dir=" + dir}));
    trainer.run();
  }
  const std::vector<std::string> before = list_checkpoints(dir);
  ASSERT_FALSE(before.empty());
  expect_input_error([&] { Trainer(config({"train.objective=dense", "train.steps=4", "model.d_ffn=48",
                                           "checkpoint.dir=" + dir})); },
                     {"checkpoint.dir", "cannot resume from", "ffn/fc1/weight", "checkpoint.resume: never"});
  EXPECT_EQ(list_checkpoints(dir), before);
}

TEST_F(TrainerTest, DamagedNewestCheckpointFallsBackToThePreviousOne) {
  {
    Trainer trainer(config({"train.objective=dense", "train.steps=4", "checkpoint.every=2", "checkpoint.keep=3"}));
    trainer.run();
  }
  const std::vector<std::string> files = list_checkpoints(dir_.file("ckpt"));
  ASSERT_EQ(files.size(), 2u);  // steps 4 and 2
  fs::resize_file(files[0], fs::file_size(files[0]) / 2);
  Trainer resumed(config({"train.objective=dense", "train.steps=4", "checkpoint.every=2"}));
  EXPECT_EQ(resumed.state().step, 2);
}

// Every dataset and every attribute of a checkpoint, as text, for comparing two files' contents.
std::map<std::string, std::string> checkpoint_contents(const std::string& path) {
  const Hdf5File file = Hdf5File::open_read_only(path);
  std::map<std::string, std::string> contents;
  for (const std::string group : {"/model", "/optim/m", "/optim/v"})
    for (const std::string& name : file.list_datasets(group)) {
      const std::vector<int64_t> shape = file.dataset_shape(group + "/" + name);
      std::vector<float> values(static_cast<size_t>(shape.size() == 2 ? shape[0] * shape[1] : shape[0]));
      file.read_floats(group + "/" + name, values.data(), static_cast<int64_t>(values.size()));
      contents[group + "/" + name] = std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
    }
  contents["/model@config"] = file.read_string_attribute("/model", "config");
  const TrainingState state = read_training_state(file);
  contents["/train"] = fmt::format("{} {} {} {} {} {} {}", state.step, state.tokens, state.optimizer_updates,
                                   state.skipped_updates, state.config_yaml, fmt::join(state.loader_positions, ","),
                                   state.seed);
  return contents;
}

// The checkpoint a run writes in the background while it trains on holds the state of its step exactly: the
// same content as a synchronous save of a run stopped at that step.
TEST_F(TrainerTest, ABackgroundCheckpointEqualsASynchronousSaveOfItsStep) {
  const std::vector<std::string> run = {"train.objective=joint", "train.steps=5", "checkpoint.keep=5",
                                        "checkpoint.resume=never", "train.val_every=0"};
  {
    Trainer trainer(config(run));
    trainer.step();
    trainer.step();
    trainer.save_checkpoint();  // in flight while the next steps change every tensor
    trainer.step();
    trainer.step();
    trainer.finish_checkpoint();
  }
  const std::string reference = dir_.file("reference.h5");
  {
    Trainer trainer(config(run));
    trainer.step();
    trainer.step();
    Optimizer& opt = trainer.optimizer();
    const std::vector<Tensor> groups = {opt.master(), opt.moment(0), opt.moment(1)};
    save_training_checkpoint(reference, config().model, [&](int g) { return to_host_floats(groups[g]); },
                             trainer.state());
  }
  const std::string background = dir_.file("ckpt/" + checkpoint_file_name(2));
  ASSERT_TRUE(fs::exists(background));
  const auto expected = checkpoint_contents(reference), found = checkpoint_contents(background);
  EXPECT_GT(expected.size(), 10u);
  EXPECT_TRUE(expected == found) << "the background checkpoint differs from the synchronous save";
}

// A write that fails in the background (here: a directory where the file should go) ends the run at the next
// checkpoint, naming the file; the earlier checkpoint stays, loadable, and no temporary is left.
TEST_F(TrainerTest, AFailedBackgroundWriteEndsTheRunAtTheNextCheckpoint) {
  fs::create_directories(dir_.file("ckpt/" + checkpoint_file_name(2) + "/blocker"));
  Trainer trainer(config({"train.objective=dense", "train.steps=6", "checkpoint.every=1", "checkpoint.keep=1"}));
  try {
    trainer.run();
    FAIL() << "the run ended although a checkpoint could not be written";
  } catch (const InputError& e) {
    FAIL() << "a failed write is an I/O failure (exit code 1), not bad input: " << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.file("ckpt/" + checkpoint_file_name(2))), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(trainer.state().step, 3) << "the failure is reported by the checkpoint after it";
  const std::vector<std::string> kept = list_checkpoints(dir_.file("ckpt"));
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(fs::path(kept[0]).filename(), checkpoint_file_name(1));
  EXPECT_NO_THROW(open_training_checkpoint(kept[0], config().model));
  for (const auto& entry : fs::recursive_directory_iterator(dir_.file("ckpt")))
    EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
}

// A stop request while a checkpoint is being written waits for it, then ends with a checkpoint of the step
// reached; both are good and the run resumes from the newer one.
TEST_F(TrainerTest, AStopDuringABackgroundWriteEndsWithAGoodCheckpoint) {
  {
    Trainer trainer(config({"train.objective=dense", "train.steps=6", "checkpoint.keep=5"}));
    trainer.step();
    trainer.save_checkpoint();  // step 1, in flight
    trainer.step();
    Trainer::request_stop();
    EXPECT_EQ(trainer.run(), Trainer::Outcome::preempted);
  }
  const std::vector<std::string> written = list_checkpoints(dir_.file("ckpt"));
  ASSERT_EQ(written.size(), 2u);
  for (const std::string& path : written) EXPECT_NO_THROW(open_training_checkpoint(path, config().model)) << path;
  Trainer resumed(config({"train.objective=dense", "train.steps=6"}));
  EXPECT_EQ(resumed.state().step, 2);
}

}  // namespace
}  // namespace ratplus::test
