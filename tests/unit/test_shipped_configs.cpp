// The configs shipped in configs/ load, and the paper-scale ones have the sizes of SPEC §2; tiny.yaml and
// the key list of SPEC §10 name every key of the config schema.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "core/config.h"
#include "model/pattern.h"

namespace ratplus {
namespace {

const std::filesystem::path kRoot = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
const std::filesystem::path kConfigs = kRoot / "configs";

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

// A run of every shipped config validates and checkpoints more than once before it ends, and its metrics port
// is not node_exporter's.
TEST(ShippedConfigs, EveryConfigValidatesAndCheckpointsDuringItsRun) {
  for (const auto& entry : std::filesystem::directory_iterator(kConfigs)) {
    if (entry.path().extension() != ".yaml") continue;
    const ExperimentConfig c = load_experiment_config(entry.path().string());
    const std::string name = entry.path().filename().string();
    EXPECT_GT(c.train.val_every, 0) << name;
    EXPECT_LE(2 * c.train.val_every, c.train.steps) << name;
    EXPECT_GT(c.checkpoint.every, 0) << name;
    EXPECT_LE(2 * c.checkpoint.every, c.train.steps) << name;
    EXPECT_EQ(c.metrics.listen.find(":9100"), std::string::npos) << name;
  }
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

// The README says tiny.yaml lists and explains every key.
TEST(ShippedConfigs, TinyConfigSetsEveryKey) {
  const YAML::Node tiny = YAML::LoadFile((kConfigs / "tiny.yaml").string());
  for (const std::string& key : config_keys()) {
    const size_t dot = key.find('.');
    EXPECT_TRUE(tiny[key.substr(0, dot)][key.substr(dot + 1)].IsDefined()) << key << " is missing from tiny.yaml";
  }
}

// SPEC §10 lists the keys of each section as "section: {key, key (note), key: a|b, ...}".
TEST(ShippedConfigs, SpecListsEveryKey) {
  std::ifstream in(kRoot / "docs" / "SPEC.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string spec = text.str();
  const size_t section_10 = spec.find("## 10.");
  ASSERT_NE(section_10, std::string::npos);
  const size_t block = spec.find("```yaml", section_10);
  ASSERT_NE(block, std::string::npos);
  const std::string listing = spec.substr(block, spec.find("```", block + 7) - block);
  for (const std::string& key : config_keys()) {
    const size_t dot = key.find('.');
    std::smatch braces;
    const std::regex section_entry("\\n" + key.substr(0, dot) + ":\\s*\\{([^}]*)\\}");
    ASSERT_TRUE(std::regex_search(listing, braces, section_entry)) << "no " << key.substr(0, dot) << " section";
    // The key names are the words that start the list or follow a comma, once notes in () or [] are gone.
    const std::string keys = std::regex_replace(braces[1].str(), std::regex("\\([^)]*\\)|\\[[^\\]]*\\]"), "");
    std::set<std::string> names;
    const std::regex name("(?:^|,)\\s*([a-z_0-9]+)");
    for (auto it = std::sregex_iterator(keys.begin(), keys.end(), name); it != std::sregex_iterator(); ++it)
      names.insert((*it)[1].str());
    EXPECT_TRUE(names.contains(key.substr(dot + 1))) << key << " is missing from SPEC §10";
  }
}

}  // namespace
}  // namespace ratplus
