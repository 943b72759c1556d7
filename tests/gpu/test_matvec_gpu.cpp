// The matrix–vector kernel (kernels/cuda/matvec.h) against the CPU's product of the same bf16-rounded
// operands: weight counts that leave a warp's second row unused, inner sizes that end inside a 256-column
// step and inside the unrolled group of steps, padded weight rows, beta 0 and 2, f32 and bf16 results; its
// fused forms (residual added, GELU applied); and the calls it must leave to cuBLASLt.
#include <fmt/format.h>

#include <string>

#include "gpu_test_util.h"
#include "kernels/matmul.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/matvec.h"
#endif

namespace ratplus::test {
namespace {

#ifdef RATPLUS_HAVE_CUDA

TEST(GpuMatvec, MatchesCpuOnAwkwardSizes) {
  RATPLUS_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const int64_t k : {8, 264, 2056})
    for (const int64_t n : {1, 5, 67, 1031})
      for (const double beta : {0.0, 2.0})
        for (const DType out : {DType::f32, DType::bf16}) {
          const std::string what = fmt::format("n {} k {} beta {} {}", n, k, beta, dtype_name(out));
          Pair a(1, k, ++seed), b(n, k, ++seed, 1.0, 16), c(1, n, ++seed);
          const DeviceBf16 a16 = round_to_bf16(a, k), b16 = round_to_bf16(b, k + 16);
          if (out == DType::bf16) {  // c rounded first, so that both products scale the same old values by beta
            const DeviceBf16 c16 = round_to_bf16(c, n);
            matmul(c.h, a.h, false, b.h, true, 0.5, beta);
            ASSERT_TRUE(cuda::matvec(c16.t, a16.t, false, b16.t, true, 0.5, beta)) << what;
            convert_tensor(c.d, c16.t);
            c.expect_matches(8e-3, what.c_str());
          } else {
            matmul(c.h, a.h, false, b.h, true, 0.5, beta);
            ASSERT_TRUE(cuda::matvec(c.d, a16.t, false, b16.t, true, 0.5, beta)) << what;
            c.expect_matches(1e-4, what.c_str());
          }
        }
}

// The fused kernels behind linear_add (in place and from another residual) and linear_gelu, against the
// CPU's compositions on the rounded operands.
TEST(GpuMatvec, FusedResidualAndGeluMatchCpu) {
  RATPLUS_REQUIRE_GPU();
  uint64_t seed = 500;
  for (const int64_t k : {8, 264, 2056})
    for (const int64_t n : {1, 67, 1031}) {
      const std::string what = fmt::format("n {} k {}", n, k);
      Pair a(1, k, ++seed), w(n, k, ++seed, 0.1), residual(1, n, ++seed), y(1, n, ++seed), pre(1, n, 1), act(1, n, 2);
      const DeviceBf16 a16 = round_to_bf16(a, k), w16 = round_to_bf16(w, k), r16 = round_to_bf16(residual, n);
      const DeviceBf16 y16(1, n, n), pre16(1, n, n), act16(1, n, n);
      linear_add(y.h, residual.h, a.h, w.h);
      ASSERT_TRUE(cuda::matvec_add(y16.t, r16.t, a16.t, w16.t)) << what;
      convert_tensor(y.d, y16.t);
      y.expect_matches(8e-3, ("linear_add " + what).c_str());
      ASSERT_TRUE(cuda::matvec_add(r16.t, r16.t, a16.t, w16.t)) << what;  // in place
      convert_tensor(y.d, r16.t);
      y.expect_matches(8e-3, ("linear_add in place " + what).c_str());
      linear_gelu(pre.h, act.h, a.h, w.h);
      ASSERT_TRUE(cuda::matvec_gelu(pre16.t, act16.t, a16.t, w16.t)) << what;
      convert_tensor(pre.d, pre16.t);
      pre.expect_matches(8e-3, ("linear_gelu pre " + what).c_str());
      convert_tensor(act.d, act16.t);
      act.expect_matches(8e-3, ("linear_gelu act " + what).c_str());
    }
}

TEST(GpuMatvec, LeavesOtherCallsToCublasLt) {
  RATPLUS_REQUIRE_GPU();
  Pair a(2, 16, 1), b(16, 16, 2), c(2, 16, 3), odd(1, 12, 4), odd_b(16, 12, 5);
  const DeviceBf16 a16 = round_to_bf16(a, 16), b16 = round_to_bf16(b, 16), odd16 = round_to_bf16(odd, 12),
                   odd_b16 = round_to_bf16(odd_b, 12);
  const DeviceBf16 two(2, 16, 16), one(1, 16, 16), square(16, 16, 16);
  const Tensor row = a16.t.rows_slice(0, 1);
  EXPECT_TRUE(cuda::matvec(one.t, row, false, b16.t, true, 1, 0)) << "the call it takes";
  EXPECT_FALSE(cuda::matvec(two.t, a16.t, false, b16.t, true, 1, 0)) << "2 rows";
  EXPECT_FALSE(cuda::matvec(one.t, row, false, b16.t, false, 1, 0)) << "B not transposed";
  EXPECT_FALSE(cuda::matvec(square.t, row, true, b16.t.rows_slice(0, 1), true, 1, 0)) << "A transposed";
  EXPECT_FALSE(cuda::matvec(one.t.cols_slice(0, 16), odd16.t, false, odd_b16.t, true, 1, 0)) << "k = 12";
  EXPECT_FALSE(cuda::matvec(c.d.rows_slice(0, 1), a.d.rows_slice(0, 1), false, b.d, true, 1, 0)) << "f32";
}

#endif

}  // namespace
}  // namespace ratplus::test
