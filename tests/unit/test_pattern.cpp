// Pattern text: parsing, resolution to per-head key sets (and top-k block terms), and rejection of
// malformed text.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/pattern.h"

namespace ratplus {
namespace {

TEST(Pattern, SimpleForms) {
  EXPECT_EQ(Pattern::parse("dense").head_keys(0, 2), (std::vector<KeySet>{{1, 0, 0}, {1, 0, 0}}));
  EXPECT_EQ(Pattern::parse("dilated:D=16,W=256,P=4").head_keys(3, 1), (std::vector<KeySet>{{16, 256, 4}}));
  EXPECT_EQ(Pattern::parse("dilated:D=64").head_keys(0, 1), (std::vector<KeySet>{{64, 0, 0}}));
  EXPECT_EQ(Pattern::parse("local:W=256,P=4").head_keys(0, 1), (std::vector<KeySet>{{0, 256, 4}}));
  EXPECT_EQ(Pattern::parse("local").head_keys(0, 1), (std::vector<KeySet>{{0, 0, 0}}));
}

TEST(Pattern, PerLayerWithRepeatsAndPerHeadGroups) {
  const Pattern p = Pattern::parse("layers=dense*2|heads=1:dense+3:dilated:D=4,W=2|local:W=8*1");
  p.check_fits(4, 4);
  EXPECT_EQ(p.head_keys(0, 4)[3], (KeySet{1, 0, 0}));
  EXPECT_EQ(p.head_keys(1, 4)[0], (KeySet{1, 0, 0}));
  EXPECT_EQ(p.head_keys(2, 4), (std::vector<KeySet>{{1, 0, 0}, {4, 2, 0}, {4, 2, 0}, {4, 2, 0}}));
  EXPECT_EQ(p.head_keys(3, 4)[2], (KeySet{0, 8, 0}));
  EXPECT_EQ(p.text(), "layers=dense*2|heads=1:dense+3:dilated:D=4,W=2|local:W=8*1");
}

TEST(Pattern, HeadsAloneAppliesToEveryLayer) {
  const Pattern p = Pattern::parse("heads=2:dense+2:dilated:D=16");
  p.check_fits(24, 4);
  EXPECT_EQ(p.head_keys(23, 4)[3], (KeySet{16, 0, 0}));
}

TEST(Pattern, RejectsMalformedTextNamingIt) {
  for (const char* bad : {"", "bogus", "dilated", "dilated:D=0", "dilated:D=x", "dilated:D=4,Q=1", "dilated:D=4,D=5",
                          "local:W=-1", "dense:W=3", "heads=2dense", "heads=0:dense", "layers=dense*0",
                          "dilated:D=4,W", "layers=dense*99999999999", "layers=dense*40000|local*40000",
                          "heads=99999999999:dense", "heads=40000:dense+40000:local", "topk:B=0", "topk:B=-4", "topk:K=-1",
                          "topk:D=-2", "topk:W=-1", "topk:P=-3", "topk:score=best", "topk:score=", "topk:B=4,B=8",
                          "topk:score=quest,score=moba", "topk:Q=1", "topk:B=x", "dilated:D=4,score=quest",
                          "heads=1:dense+1:topk:K=-2"}) {
    try {
      Pattern::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(Pattern, TopKBlocksWithDefaultsAndTheirFixedKeys) {
  const Pattern plain = Pattern::parse("topk");
  EXPECT_EQ(plain.head_keys(0, 1), (std::vector<KeySet>{{0, 0, 0}}));
  EXPECT_EQ(plain.head_blocks(0, 1), (std::vector<BlockTopK>{{64, 8, BlockScore::quest}}));
  const Pattern full = Pattern::parse("topk:B=16,K=4,W=256,P=4,D=8,score=moba");
  EXPECT_EQ(full.head_keys(0, 1), (std::vector<KeySet>{{8, 256, 4}}));
  EXPECT_EQ(full.head_blocks(0, 1), (std::vector<BlockTopK>{{16, 4, BlockScore::moba}}));
  EXPECT_TRUE(full.has_top_k());
  EXPECT_FALSE(Pattern::parse("dilated:D=4").has_top_k());
  EXPECT_EQ(Pattern::parse("topk:B=1,K=0,score=quest").head_blocks(0, 1), (std::vector<BlockTopK>{{1, 0, BlockScore::quest}}));
}

TEST(Pattern, TopKInHybrids) {
  const Pattern layers = Pattern::parse("layers=dense|topk:B=8,K=2*2");
  layers.check_fits(3, 2);
  EXPECT_FALSE(layers.head_blocks(0, 2)[1].active());
  EXPECT_EQ(layers.head_blocks(2, 2)[1], (BlockTopK{8, 2, BlockScore::quest}));
  const Pattern heads = Pattern::parse("heads=2:dense+2:topk:B=64,K=8,W=16,score=moba");
  heads.check_fits(5, 4);
  EXPECT_EQ(heads.head_keys(4, 4), (std::vector<KeySet>{{1, 0, 0}, {1, 0, 0}, {0, 16, 0}, {0, 16, 0}}));
  EXPECT_EQ(heads.head_blocks(4, 4),
            (std::vector<BlockTopK>{{}, {}, {64, 8, BlockScore::moba}, {64, 8, BlockScore::moba}}));
}

TEST(Pattern, RejectsPatternsThatDoNotFitTheModel) {
  EXPECT_THROW(Pattern::parse("layers=dense|dense|dense").check_fits(2, 4), InputError);
  EXPECT_THROW(Pattern::parse("heads=2:dense+1:local").check_fits(2, 4), InputError);
  EXPECT_NO_THROW(Pattern::parse("layers=dense|local").check_fits(2, 4));
}

}  // namespace
}  // namespace ratplus
