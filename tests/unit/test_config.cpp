// Experiment config loading (SPEC §10): the tiny config, defaults, every class of validation error with its
// file, line and key, command-line overrides, and the YAML round trips of the model section (SPEC §7) and
// of the whole config.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/temp_dir.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

// The tiny config of the repository, found from this file's location.
std::string tiny_config_path() {
  return (fs::path(__FILE__).parent_path().parent_path().parent_path() / "configs" / "tiny.yaml").string();
}

class ConfigTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = dir_.file(name);
    std::ofstream(path) << text;
    return path;
  }

  // The message of the InputError that loading `text` from bad.yaml throws ("" when none is thrown).
  std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) const {
    try {
      load_experiment_config(write("bad.yaml", text), overrides);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  // Loading `text` fails at bad.yaml:line for `key`, and the message contains `detail`.
  void expect_error(const std::string& text, int line, const std::string& key, const std::string& detail) const {
    SCOPED_TRACE(text);
    const std::string message = load_error(text);
    EXPECT_NE(message.find("bad.yaml:" + std::to_string(line) + ": " + key + ": "), std::string::npos) << message;
    EXPECT_NE(message.find(detail), std::string::npos) << message;
  }

  TempDir dir_;
};

// Two configs agree on every key of the schema (each difference is a failure naming the key).
void expect_same_experiment(const ExperimentConfig& a, const ExperimentConfig& b) {
  for (const ConfigDifference& d : config_differences(a, b))
    ADD_FAILURE() << d.key << ": " << d.first << " vs " << d.second;
}

TEST_F(ConfigTest, TinyConfigLoads) {
  const ExperimentConfig c = load_experiment_config(tiny_config_path());
  EXPECT_EQ(c.source, tiny_config_path());
  EXPECT_EQ(c.model.vocab_size, 256);
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.n_layers, 2);
  EXPECT_EQ(c.model.n_heads, 4);
  EXPECT_EQ(c.model.d_ffn, 256);
  EXPECT_TRUE(c.model.recurrence);
  EXPECT_TRUE(c.model.tie_embeddings);
  EXPECT_DOUBLE_EQ(c.model.init_std, 0.02);
  EXPECT_EQ(c.data.seq_len, 128);
  EXPECT_EQ(c.data.train, std::vector<std::string>{"runs/tiny/train.bin"});
  EXPECT_EQ(c.data.val, std::vector<std::string>{"runs/tiny/val.bin"});
  EXPECT_EQ(c.data.format, ShardFormat::automatic);
  EXPECT_EQ(c.data.eos_id, 0);
  EXPECT_EQ(c.train.objective, Objective::joint);
  EXPECT_EQ(c.train.arl_dilation, 16);
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.global_batch, 8);
  EXPECT_EQ(c.train.micro_batch, 8);
  EXPECT_EQ(c.train.seed, 1u);
  EXPECT_EQ(c.train.init_from, "");
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-3);
  EXPECT_DOUBLE_EQ(c.optim.min_lr, 1e-5);
  EXPECT_DOUBLE_EQ(c.optim.warmup, 0.05);
  EXPECT_DOUBLE_EQ(c.optim.betas[0], 0.9);
  EXPECT_DOUBLE_EQ(c.optim.betas[1], 0.95);
  EXPECT_DOUBLE_EQ(c.optim.eps, 1e-8);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.parallel.tp, 1);
  EXPECT_FALSE(c.parallel.zero1);
  EXPECT_EQ(c.checkpoint.dir, "runs/tiny/checkpoints");
  EXPECT_EQ(c.checkpoint.every, 250);
  EXPECT_EQ(c.checkpoint.keep, 2);
  EXPECT_EQ(c.checkpoint.resume, ResumeMode::automatic);
  EXPECT_EQ(c.metrics.listen, "");
  EXPECT_EQ(c.runtime.device, DeviceChoice::automatic);
  EXPECT_EQ(c.runtime.precision, Precision::fp32);
}

TEST_F(ConfigTest, MissingSectionsAndKeysKeepDefaults) {
  const ExperimentConfig empty = parse_experiment_config("", "empty");
  expect_same_experiment(empty, ExperimentConfig{});
  EXPECT_EQ(empty.source, "empty");

  const ExperimentConfig partial = parse_experiment_config("model:\n  d_model: 128\nmetrics:\n", "partial");
  EXPECT_EQ(partial.model.d_model, 128);
  EXPECT_EQ(partial.model.n_heads, ModelConfig{}.n_heads);
  EXPECT_EQ(partial.train.steps, TrainConfig{}.steps);
  EXPECT_EQ(partial.metrics.listen, "");
}

TEST_F(ConfigTest, PathsAcceptOneStringOrAList) {
  const ExperimentConfig one = parse_experiment_config("data:\n  train: a.bin\n  val: 'shards/*.bin'\n", "x");
  EXPECT_EQ(one.data.train, std::vector<std::string>{"a.bin"});
  EXPECT_EQ(one.data.val, std::vector<std::string>{"shards/*.bin"});
  const ExperimentConfig list = parse_experiment_config("data:\n  train: [a.bin, b.bin]\n  val:\n    - c.bin\n", "x");
  EXPECT_EQ(list.data.train, (std::vector<std::string>{"a.bin", "b.bin"}));
  EXPECT_EQ(list.data.val, std::vector<std::string>{"c.bin"});
  expect_error("data:\n  train:\n    - a.bin\n    - [b.bin]\n", 4, "data.train[1]", "expected a path");
  expect_error("data:\n  val: {a: b}\n", 2, "data.val", "expected a path or a list of paths");
}

TEST_F(ConfigTest, UnknownKeysSuggestTheNearestName) {
  expect_error("model:\n  vocab_size: 256\n  d_modle: 64\n", 3, "model.d_modle",
               "unknown key; did you mean 'd_model'?");
  expect_error("# comment\nmodle:\n  d_model: 64\n", 2, "modle", "unknown section; did you mean 'model'?");
  expect_error("optim:\n  betass: [0.9, 0.95]\n", 2, "optim.betass", "did you mean 'betas'?");
  expect_error("optim:\n  lr: 1e-3\n  momentum: 0.9\n", 3, "optim.momentum",
               "unknown key (expected one of: lr, min_lr,");
  expect_error("optimizer:\n  lr: 1\n", 1, "optimizer", "unknown section");
}

TEST_F(ConfigTest, WrongTypesNameFileLineAndKey) {
  expect_error("model:\n  d_model: wide\n", 2, "model.d_model", "expected an integer, got 'wide'");
  expect_error("model:\n  n_layers: 2.5\n", 2, "model.n_layers", "expected an integer, got '2.5'");
  expect_error("model:\n  d_model: \"64\"\n", 2, "model.d_model", "expected an integer, got the quoted string \"64\"");
  expect_error("model:\n  d_model:\n", 2, "model.d_model", "expected an integer, got nothing");
  expect_error("model:\n  recurrence: yes\n", 2, "model.recurrence", "expected true or false, got 'yes'");
  expect_error("parallel:\n  zero1: 1\n", 2, "parallel.zero1", "expected true or false");
  expect_error("parallel:\n  bucket_mb: 0\n", 2, "parallel.bucket_mb", "must be > 0, got 0");
  expect_error("optim:\n  lr: fast\n", 2, "optim.lr", "expected a number, got 'fast'");
  expect_error("optim:\n  betas: 0.9\n", 2, "optim.betas", "expected a list");
  expect_error("optim:\n  betas: [0.9]\n", 2, "optim.betas", "expected a list of two numbers");
  expect_error("optim:\n  betas:\n    - 0.9\n    - high\n", 4, "optim.betas[1]", "expected a number, got 'high'");
  expect_error("train:\n  pattern: [dense]\n", 2, "train.pattern", "expected a string, got a list");
  expect_error("data:\n  seed: -3\n", 2, "data.seed", "expected a non-negative integer");
  expect_error("model: 3\n", 1, "model", "expected a mapping of keys");
  expect_error("model:\n  d_model: 64\n  d_model: 32\n", 3, "model.d_model", "duplicate key");
  EXPECT_NE(load_error("- model\n").find("bad.yaml:1: expected a mapping of sections"), std::string::npos);
}

TEST_F(ConfigTest, OutOfRangeValuesNameFileLineAndKey) {
  expect_error("model:\n  vocab_size: 0\n", 2, "model.vocab_size", "must be >= 1, got 0");
  expect_error("model:\n  d_ffn: -4\n", 2, "model.d_ffn", "must be >= 1");
  expect_error("model:\n  norm_eps: 0\n", 2, "model.norm_eps", "must be in (0, 1], got 0");
  expect_error("model:\n  norm_eps: nan\n", 2, "model.norm_eps", "must be a finite number");
  expect_error("train:\n  pattern: \"dense\\x01\"\n", 2, "train.pattern", "must be printable UTF-8 text");
  expect_error("train:\n  metrics_jsonl: \"m\xae.jsonl\"\n", 2, "train.metrics_jsonl", "must be printable UTF-8 text");
  expect_error("data:\n  train: \"a\\tb.bin\"\n", 2, "data.train", "must be printable UTF-8 text");
  expect_error("model:\n  n_layers: 100000000\n", 2, "model.n_layers", "must be <= 65536, got 100000000");
  expect_error("model:\n  d_model: 400000000\n  n_heads: 2\n", 2, "model.d_model", "more than 2^48");
  expect_error("model:\n  norm_eps: 4294967296\n", 2, "model.norm_eps", "must be in (0, 1], got 4294967296");
  expect_error("model:\n  init_std: 9.2e18\n", 2, "model.init_std", "must be in (0, 1], got 9.2e+18");
  expect_error("data:\n  seq_len: 0\n", 2, "data.seq_len", "must be >= 1");
  expect_error("data:\n  eos_id: -2\n", 2, "data.eos_id", "must be >= -1");
  expect_error("train:\n  arl_dilation: 0\n", 2, "train.arl_dilation", "must be >= 1");
  expect_error("train:\n  micro_batch: 0\n", 2, "train.micro_batch", "must be >= 1");
  expect_error("optim:\n  lr: -1e-3\n", 2, "optim.lr", "must be >= 0");
  expect_error("optim:\n  warmup: 1.5\n", 2, "optim.warmup", "must be in [0, 1], got 1.5");
  expect_error("optim:\n  betas: [0.9, 1.0]\n", 2, "optim.betas[1]", "must be in [0, 1), got 1");
  expect_error("optim:\n  betas: [-0.1, 0.9]\n", 2, "optim.betas[0]", "must be in [0, 1)");
  expect_error("optim:\n  eps: 0\n", 2, "optim.eps", "must be > 0");
  expect_error("optim:\n  grad_clip: 0\n", 2, "optim.grad_clip", "must be > 0");
  expect_error("parallel:\n  tp: 0\n", 2, "parallel.tp", "must be >= 1");
  expect_error("checkpoint:\n  every: -1\n", 2, "checkpoint.every", "must be >= 0");
  expect_error("checkpoint:\n  keep: 0\n", 2, "checkpoint.keep", "must be >= 1");
  expect_error("checkpoint:\n  dir: \"\"\n", 2, "checkpoint.dir", "must not be empty");
  expect_error("metrics:\n  listen: localhost\n", 2, "metrics.listen", "expected \"host:port\"");
  EXPECT_EQ(parse_experiment_config("checkpoint:\n  every: 0\n", "x").checkpoint.every, 0);
  EXPECT_EQ(parse_experiment_config("metrics:\n  listen: 0.0.0.0:9100\n", "x").metrics.listen, "0.0.0.0:9100");
}

TEST_F(ConfigTest, RulesAcrossKeysPointAtAKeyTheFileSets) {
  expect_error("model:\n  d_model: 64\n  n_heads: 5\n", 3, "model.n_heads", "must be a multiple of n_heads (5)");
  expect_error("model:\n  d_model: 60\n", 2, "model.d_model", "must be even (RoPE");
  expect_error("model:\n  d_model: 96\n  n_heads: 32\n", 3, "model.n_heads", "head_dim = d_model / n_heads = 3");
  expect_error("optim:\n  lr: 1e-3\n  min_lr: 1e-2\n", 3, "optim.min_lr", "must be <= lr");
  expect_error("optim:\n  lr: 1e-7\n", 2, "optim.lr", "must be <= lr");
  expect_error("train:\n  global_batch: 12\n  micro_batch: 8\n", 2, "train.global_batch",
               "multiple of micro_batch (8)");
  expect_error("model:\n  vocab_size: 100\ndata:\n  eos_id: 100\n", 4, "data.eos_id",
               "must be < model.vocab_size (100)");
  EXPECT_EQ(parse_experiment_config("data:\n  eos_id: 255\n", "x").data.eos_id, 255);
}

// Each choice key with its words, in the order of its enum.
const std::vector<std::pair<std::string, std::vector<std::string>>> kChoiceKeys = {
    {"data.format", {"auto", "llmc", "flat_u16", "flat_u32"}}, {"data.order", {"ordered", "random"}},
    {"train.objective", {"joint", "dense", "adapt"}},          {"checkpoint.resume", {"auto", "never"}},
    {"runtime.device", {"auto", "cpu", "cuda"}},               {"runtime.precision", {"bf16", "fp32"}},
};

TEST_F(ConfigTest, EnumsListTheirChoices) {
  expect_error("data:\n  format: flat16\n", 2, "data.format",
               "must be one of auto|llmc|flat_u16|flat_u32, got 'flat16'; did you mean 'flat_u16'?");
  expect_error("data:\n  order: shuffled\n", 2, "data.order", "must be one of ordered|random");
  expect_error("train:\n  objective: sparse\n", 2, "train.objective", "must be one of joint|dense|adapt");
  expect_error("checkpoint:\n  resume: always\n", 2, "checkpoint.resume", "must be one of auto|never");
  expect_error("runtime:\n  device: gpu\n", 2, "runtime.device", "must be one of auto|cpu|cuda");
  expect_error("runtime:\n  precision: fp16\n", 2, "runtime.precision", "must be one of bf16|fp32");
}

// Every word of every choice reads into its enum and is written back as the same word; any other word
// (also from the command line, also quoted) is an InputError (exit code 2) naming the key and the words.
TEST_F(ConfigTest, ChoiceWordsRoundTripAndOthersAreRefused) {
  for (const auto& [key, words] : kChoiceKeys) {
    const std::string name = key.substr(key.find('.') + 1);
    std::string allowed;
    for (const std::string& word : words) allowed += (allowed.empty() ? "" : "|") + word;
    for (const std::string& word : words) {
      const std::string yaml = experiment_config_to_yaml(parse_experiment_config("", "x", {key + "=" + word}));
      EXPECT_NE(yaml.find("\n  " + name + ": \"" + word + "\"\n"), std::string::npos) << key << "=" << word;
    }
    const std::vector<std::string> bad_values = {"bogus", "\"\"", "'" + words[0] + " '", "[" + words[0] + "]"};
    for (const std::string& bad : bad_values) {
      SCOPED_TRACE(key + "=" + bad);
      try {
        parse_experiment_config("", "x", {key + "=" + bad});
        ADD_FAILURE() << "no error";
      } catch (const InputError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("command line (" + key + "=" + bad + "): " + key + ": "), std::string::npos) << message;
        if (bad[0] != '[') {
          EXPECT_NE(message.find("must be one of " + allowed + ", got '"), std::string::npos) << message;
        }
      }
    }
  }
}

TEST_F(ConfigTest, InvalidYamlAndMissingFilesNameTheFile) {
  const std::string syntax = load_error("model:\n  d_model: 64\n  n_heads: [4\n");
  EXPECT_NE(syntax.find("bad.yaml:"), std::string::npos) << syntax;
  EXPECT_NE(syntax.find("invalid YAML"), std::string::npos) << syntax;
  const std::string map_value = load_error("model:\n  d_model: 64: 3\n");
  EXPECT_NE(map_value.find("bad.yaml:2: invalid YAML"), std::string::npos) << map_value;

  const std::string missing = dir_.file("absent.yaml");
  try {
    load_experiment_config(missing);
    FAIL() << "no error for a missing file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": cannot open"), std::string::npos) << e.what();
  }
}

TEST_F(ConfigTest, OverridesApplyInOrderBeforeValidation) {
  const ExperimentConfig c = load_experiment_config(
      tiny_config_path(), {"model.d_model=128", "optim.betas=[0.8,0.99]", "data.train=[a.bin,b.bin]",
                           "model.recurrence=false", "train.pattern=dilated:D=16,W=256,P=4", "train.steps=10",
                           "train.steps=20", "metrics.listen=127.0.0.1:9100", "checkpoint.dir=out dir"});
  EXPECT_EQ(c.model.d_model, 128);
  EXPECT_EQ(c.model.n_layers, 2);
  EXPECT_DOUBLE_EQ(c.optim.betas[0], 0.8);
  EXPECT_DOUBLE_EQ(c.optim.betas[1], 0.99);
  EXPECT_EQ(c.data.train, (std::vector<std::string>{"a.bin", "b.bin"}));
  EXPECT_FALSE(c.model.recurrence);
  EXPECT_EQ(c.train.pattern, "dilated:D=16,W=256,P=4");
  EXPECT_EQ(c.train.steps, 20);
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:9100");
  EXPECT_EQ(c.checkpoint.dir, "out dir");

  // An override can add a section the file lacks, and can repair a value the file gets wrong.
  const ExperimentConfig added =
      parse_experiment_config("model:\n  d_model: 64\n", "x", {"runtime.device=cpu", "train.init_from="});
  EXPECT_EQ(added.runtime.device, DeviceChoice::cpu);
  EXPECT_EQ(added.train.init_from, "");
  EXPECT_EQ(parse_experiment_config("model:\n  n_heads: 5\n", "x", {"model.n_heads=8"}).model.n_heads, 8);
}

TEST_F(ConfigTest, BadOverridesNameTheOverride) {
  const auto expect_override_error = [](const std::string& override_text, const std::string& fragment) {
    SCOPED_TRACE(override_text);
    try {
      load_experiment_config(tiny_config_path(), {override_text});
      ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_override_error("model.d_model", "command line (model.d_model): expected section.key=value");
  expect_override_error("d_model=64", "command line (d_model=64): expected section.key=value");
  expect_override_error("model.a.b=1", "command line (model.a.b=1): expected section.key=value");
  expect_override_error("model.d_modle=3",
                        "command line (model.d_modle=3): model.d_modle: unknown key; did you mean 'd_model'?");
  expect_override_error("modle.d_model=3",
                        "command line (modle.d_model=3): modle: unknown section; did you mean 'model'?");
  expect_override_error("model.d_model=abc", "command line (model.d_model=abc): model.d_model: expected an integer");
  expect_override_error("model.recurrence=maybe", "model.recurrence: expected true or false, got 'maybe'");
  expect_override_error("optim.betas=[0.9,", "command line (optim.betas=[0.9,): invalid YAML value");
  expect_override_error("model.n_heads=5", "command line (model.n_heads=5): model.n_heads: d_model (64) must be");
}

TEST_F(ConfigTest, ExperimentConfigRoundTripsThroughYaml) {
  ExperimentConfig c;
  c.model = ModelConfig{.vocab_size = 50304,
                        .d_model = 1536,
                        .n_layers = 24,
                        .n_heads = 12,
                        .d_ffn = 6144,
                        .norm_eps = 1e-5,
                        .rope_base = 500000.0,
                        .tie_embeddings = false,
                        .recurrence = false,
                        .init_std = 0.1 + 0.2};
  c.data.train = {"shards/train_*.bin", "extra data/a.bin"};
  c.data.val = {};
  c.data.format = ShardFormat::flat_u32;
  c.data.seq_len = 4096;
  c.data.eos_id = 50256;
  c.data.order = DataOrder::random;
  c.data.seed = std::numeric_limits<uint64_t>::max();
  c.train.objective = Objective::adapt;
  c.train.arl_dilation = 32;
  c.train.pattern = "layers=dense|dilated:D=16,W=256,P=4*2";
  c.train.steps = 12345;
  c.train.global_batch = 512;
  c.train.micro_batch = 4;
  c.train.init_from = "null";
  c.train.seed = 7;
  c.train.metrics_jsonl = "true";
  c.optim = OptimConfig{.lr = 1.0 / 3.0,
                        .min_lr = 1e-300,
                        .warmup = 0.0,
                        .betas = {0.0, 0.999999999},
                        .eps = 1e-12,
                        .weight_decay = 0.0,
                        .grad_clip = 123.456};
  c.parallel = ParallelConfig{.tp = 8, .zero1 = true, .bucket_mb = 0.25};
  c.checkpoint = CheckpointConfig{.dir = "ckpt: \"quoted\" #x", .every = 0, .keep = 1, .resume = ResumeMode::never};
  c.metrics.listen = "0.0.0.0:9100";
  c.runtime = RuntimeConfig{.device = DeviceChoice::cuda, .precision = Precision::fp32};

  const std::string yaml = experiment_config_to_yaml(c);
  const ExperimentConfig back = parse_experiment_config(yaml, "resolved");
  expect_same_experiment(back, c);
  EXPECT_EQ(back.source, "resolved");
  EXPECT_EQ(experiment_config_to_yaml(back), yaml);

  const ExperimentConfig tiny = load_experiment_config(tiny_config_path());
  expect_same_experiment(parse_experiment_config(experiment_config_to_yaml(tiny), "tiny"), tiny);
}

// A value other than the default for every key of the schema, as command-line overrides, chosen so that
// the rules across keys hold (head_dim 96 / 6 = 16, eos_id < vocab_size, min_lr <= lr, 512 % 4 == 0).
const std::map<std::string, std::string> kNonDefaultValues = {
    {"model.vocab_size", "1000"},        {"model.d_model", "96"},
    {"model.n_layers", "3"},             {"model.n_heads", "6"},
    {"model.d_ffn", "384"},              {"model.norm_eps", "1e-5"},
    {"model.rope_base", "500000"},       {"model.tie_embeddings", "false"},
    {"model.recurrence", "false"},       {"model.init_std", "0.015625"},
    {"data.train", "[a.bin, 'b c.bin']"}, {"data.val", "v.bin"},
    {"data.format", "flat_u32"},         {"data.seq_len", "4096"},
    {"data.eos_id", "999"},              {"data.order", "random"},
    {"data.seed", "18446744073709551615"}, {"train.objective", "adapt"},
    {"train.arl_dilation", "32"},        {"train.pattern", "dilated:D=16,W=256,P=4"},
    {"train.steps", "12345"},            {"train.global_batch", "512"},
    {"train.micro_batch", "4"},          {"train.init_from", "init.h5"},
    {"train.seed", "7"},                 {"train.metrics_jsonl", "m.jsonl"},
    {"train.log_every", "3"},            {"train.val_every", "9"},
    {"train.val_batches", "2"},          {"train.stop_after", "11"},
    {"train.max_nonfinite", "1"},        {"optim.lr", "0.1"},
    {"optim.min_lr", "0.01"},            {"optim.warmup", "0.5"},
    {"optim.betas", "[0.5, 0.75]"},      {"optim.eps", "1e-12"},
    {"optim.weight_decay", "0"},         {"optim.grad_clip", "2.5"},
    {"parallel.tp", "8"},                {"parallel.zero1", "true"},
    {"parallel.bucket_mb", "0.25"},      {"checkpoint.dir", "ckpt"},
    {"checkpoint.every", "100"},         {"checkpoint.keep", "1"},
    {"checkpoint.resume", "never"},      {"metrics.listen", "0.0.0.0:9100"},
    {"metrics.linger_seconds", "30"},    {"runtime.device", "cuda"},
    {"runtime.precision", "fp32"},
};

// Driven by the schema: a key without a value above fails here, so no key escapes the round trip.
TEST_F(ConfigTest, EveryKeyRoundTripsWithANonDefaultValue) {
  std::vector<std::string> overrides;
  for (const std::string& key : config_keys()) {
    const auto value = kNonDefaultValues.find(key);
    ASSERT_NE(value, kNonDefaultValues.end()) << key << ": give this key a non-default value in kNonDefaultValues";
    overrides.push_back(key + "=" + value->second);
  }
  EXPECT_EQ(overrides.size(), kNonDefaultValues.size()) << "kNonDefaultValues names a key the schema lacks";

  const ExperimentConfig c = parse_experiment_config("", "overrides", overrides);
  std::vector<std::string> changed;
  for (const ConfigDifference& d : config_differences(c, ExperimentConfig{})) changed.push_back(d.key);
  EXPECT_EQ(changed, config_keys()) << "every value must land in its key and differ from the default";

  const std::string yaml = experiment_config_to_yaml(c);
  const ExperimentConfig back = parse_experiment_config(yaml, "resolved");
  expect_same_experiment(back, c);
  EXPECT_EQ(experiment_config_to_yaml(back), yaml);
  EXPECT_NE(yaml.find("\n  seed: 18446744073709551615\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\n  format: \"flat_u32\"\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\n  betas: [0.5, 0.75]\n"), std::string::npos) << yaml;
}

TEST_F(ConfigTest, DifferencesNameTheKeyAndBothValues) {
  ExperimentConfig a, b;
  b.model.d_model = 128;
  b.data.order = DataOrder::random;
  b.optim.betas = {0.5, 0.95};
  b.checkpoint.dir = "elsewhere";
  const std::vector<ConfigDifference> differences = config_differences(a, b);
  ASSERT_EQ(differences.size(), 4u);
  EXPECT_EQ(differences[0].key, "model.d_model");
  EXPECT_EQ(differences[0].first, "64");
  EXPECT_EQ(differences[0].second, "128");
  EXPECT_EQ(differences[1].key, "data.order");
  EXPECT_EQ(differences[1].first, "\"ordered\"");
  EXPECT_EQ(differences[1].second, "\"random\"");
  EXPECT_EQ(differences[2].key, "optim.betas");
  EXPECT_EQ(differences[2].second, "[0.5, 0.95]");
  EXPECT_EQ(differences[3].key, "checkpoint.dir");
  EXPECT_TRUE(config_differences(b, b).empty());
}

// init_std only seeds the first weights: trained models that differ in it alone are the same.
TEST_F(ConfigTest, ModelShapeDifferencesIgnoreInitStd) {
  const ModelConfig base;
  ModelConfig other = base;
  other.init_std = 0.5;
  EXPECT_TRUE(model_shape_differences(base, other).empty());
  other.recurrence = false;
  other.norm_eps = 1e-5;
  const std::vector<ConfigDifference> differences = model_shape_differences(base, other);
  ASSERT_EQ(differences.size(), 2u);
  EXPECT_EQ(differences[0].key, "model.norm_eps");
  EXPECT_EQ(differences[0].first, "1e-06");
  EXPECT_EQ(differences[0].second, "1e-05");
  EXPECT_EQ(differences[1].key, "model.recurrence");
  EXPECT_EQ(differences[1].first, "true");
  EXPECT_EQ(differences[1].second, "false");
}

TEST_F(ConfigTest, ModelConfigRoundTripsThroughYaml) {
  const ModelConfig model{.vocab_size = 1000,
                          .d_model = 96,
                          .n_layers = 3,
                          .n_heads = 6,
                          .d_ffn = 384,
                          .norm_eps = 1.0 / 7.0,
                          .rope_base = 1e4,
                          .tie_embeddings = false,
                          .recurrence = true,
                          .init_std = 0.015625};
  const std::string yaml = model_config_to_yaml(model);
  EXPECT_EQ(yaml.substr(0, yaml.find('\n')), "vocab_size: 1000") << yaml;  // the section's keys alone
  EXPECT_NE(yaml.find("\ntie_embeddings: false\n"), std::string::npos) << yaml;
  EXPECT_EQ(model_config_from_yaml(yaml, "ckpt.h5:/model"), model);
}

TEST_F(ConfigTest, ModelConfigFromYamlIsStrict) {
  const std::string full = model_config_to_yaml(ModelConfig{});
  const auto error_of = [](const std::string& yaml) {
    try {
      model_config_from_yaml(yaml, "ckpt.h5:/model");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // init_std may be left out; every other key is required.
  const std::string without_init_std = full.substr(0, full.find("init_std"));
  EXPECT_EQ(model_config_from_yaml(without_init_std, "x").init_std, ModelConfig{}.init_std);
  const size_t line = full.find("d_ffn");
  const std::string without_d_ffn = full.substr(0, line) + full.substr(full.find('\n', line) + 1);
  EXPECT_NE(error_of(without_d_ffn).find("ckpt.h5:/model: model.d_ffn: missing key"), std::string::npos)
      << error_of(without_d_ffn);
  EXPECT_NE(error_of("").find("ckpt.h5:/model: model.vocab_size: missing key"), std::string::npos);
  EXPECT_NE(error_of(full + "extra: 1\n").find("ckpt.h5:/model:11: model.extra: unknown key"), std::string::npos)
      << error_of(full + "extra: 1\n");
  EXPECT_NE(error_of("vocab_size: [1\n").find("ckpt.h5:/model:"), std::string::npos);
  EXPECT_NE(error_of("- 1\n").find("model: expected a mapping of keys"), std::string::npos);
}

}  // namespace
}  // namespace ratplus::test
