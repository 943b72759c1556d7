// Keys per query behind the FLOP counts (SPEC §8), against counts by hand: dense averages (T + 1) / 2,
// dilated and local patterns their sets, and top-k block heads their fixed keys and own block plus K blocks.
#include <gtest/gtest.h>

#include "model/flops.h"

namespace ratplus {
namespace {

ModelConfig one_head() {
  ModelConfig c;
  c.n_layers = 1;
  c.n_heads = 1;
  return c;
}

double keys_of(const char* pattern, int64_t T) { return mean_keys_per_query(one_head(), Pattern::parse(pattern), T); }

TEST(MeanKeys, DenseDilatedAndLocal) {
  EXPECT_DOUBLE_EQ(keys_of("dense", 10), 5.5);
  EXPECT_DOUBLE_EQ(keys_of("local:W=1", 4), (1 + 2 + 2 + 2) / 4.0);
  EXPECT_DOUBLE_EQ(keys_of("dilated:D=2", 4), (1 + 1 + 2 + 2) / 4.0);  // t, and j = 1 for t ≥ 2
}

TEST(MeanKeys, TopKCountsItsOwnBlockAndKBlocks) {
  EXPECT_DOUBLE_EQ(keys_of("topk:B=3,K=9", 10), 5.5);                  // every earlier block: dense
  EXPECT_DOUBLE_EQ(keys_of("topk:B=1,K=0,W=2", 10), keys_of("local:W=2", 10));
  // B = 4, K = 1 at T = 10: t = 0…3 own block only (1, 2, 3, 4 keys); t = 4…7 block 0 and the own block
  // (5 … 8); t = 8, 9 one earlier block and the own block (4 + 1, 4 + 2).
  EXPECT_DOUBLE_EQ(keys_of("topk:B=4,K=1", 10), (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 5 + 6) / 10.0);
}

}  // namespace
}  // namespace ratplus
