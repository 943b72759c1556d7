// Host transfers of tensors: f32 round trips, and bf16 conversion checked against its definition (the top
// 16 bits of an f32, narrowing rounded to nearest with ties to even).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/buffer.h"

namespace ratplus {
namespace {

TEST(HostFloats, Bf16NarrowsToNearestEvenAndWidensExactly) {
  Buffer storage(8 * 2, Device::cpu);
  const Tensor t{storage.data(), 1, 8, 8, DType::bf16, Device::cpu};
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 (odd last bit): ties go to the even 1.
  // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): it goes to 1 + 2^-6.
  // 1 + 2^-8 + 2^-20 is just above the tie: it goes up.
  const std::vector<float> in = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -2.5f,
                                 0x1p-130f, INFINITY, 3.0e38f, NAN};
  from_host_floats(t, in);
  const std::vector<float> out = to_host_floats(t);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 1.0f + 0x1p-6f);
  EXPECT_EQ(out[2], 1.0f + 0x1p-7f);
  EXPECT_EQ(out[3], -2.5f);         // representable: unchanged
  EXPECT_EQ(out[4], 0x1p-130f);     // a subnormal with few bits: unchanged
  EXPECT_EQ(out[5], INFINITY);
  EXPECT_EQ(out[6], 0x1.c4p+127f);  // 3.0e38 is 0x1.c363ccp+127: between 0x1.c2p+127 and 0x1.c4p+127, nearer the latter
  EXPECT_TRUE(std::isnan(out[7]));
  from_host_floats(t, out);  // narrowing what was widened changes no bit
  const std::vector<float> again = to_host_floats(t);
  EXPECT_EQ(std::memcmp(again.data(), out.data(), out.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace ratplus
