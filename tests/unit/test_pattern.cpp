// Pattern text: parsing, resolution to per-head key sets, and rejection of malformed text.
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
                          "heads=99999999999:dense", "heads=40000:dense+40000:local"}) {
    try {
      Pattern::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(Pattern, RejectsPatternsThatDoNotFitTheModel) {
  EXPECT_THROW(Pattern::parse("layers=dense|dense|dense").check_fits(2, 4), InputError);
  EXPECT_THROW(Pattern::parse("heads=2:dense+1:local").check_fits(2, 4), InputError);
  EXPECT_NO_THROW(Pattern::parse("layers=dense|local").check_fits(2, 4));
}

}  // namespace
}  // namespace ratplus
