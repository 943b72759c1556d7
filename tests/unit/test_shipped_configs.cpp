// The configs shipped in configs/ load, and the paper-scale ones have the sizes of SPEC §2.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "core/config.h"
#include "model/pattern.h"

namespace ratplus {
namespace {

const std::filesystem::path kConfigs = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "configs";

ExperimentConfig load(const std::string& name) { return load_experiment_config((kConfigs / (name + ".yaml")).string()); }

TEST(ShippedConfigs, EveryConfigLoadsAndItsPatternParses) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kConfigs)) {
    if (entry.path().extension() != ".yaml") continue;
    const ExperimentConfig c = load_experiment_config(entry.path().string());
    Pattern::parse(c.train.pattern).check_fits(c.model.n_layers, c.model.n_heads);
    ++count;
  }
  EXPECT_GE(count, 11);
}

TEST(ShippedConfigs, PaperScaleSizes) {
  EXPECT_NEAR(load("ratplus-1.5b").model.parameter_count() / 1e9, 1.47, 0.01);
  EXPECT_NEAR(load("ratplus-2.6b").model.parameter_count() / 1e9, 2.65, 0.01);
  EXPECT_NEAR(load("ratplus-7.6b").model.parameter_count() / 1e9, 7.65, 0.01);
  for (const char* name : {"ratplus-1.5b", "ratplus-2.6b", "ratplus-7.6b"}) {
    const ExperimentConfig c = load(name);
    EXPECT_EQ(c.model.head_dim(), 128) << name;
    // about 100B tokens
    EXPECT_NEAR(static_cast<double>(c.train.steps * c.train.global_batch * c.data.seq_len) / 1e9, 100.0, 0.01) << name;
  }
  EXPECT_FALSE(load("attention-1.5b").model.recurrence);
  EXPECT_EQ(load("adapt-1.5b-dilated16").train.pattern, "dilated:D=16,W=256,P=4");
}

}  // namespace
}  // namespace ratplus
