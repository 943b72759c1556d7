// The few-row product kernel (kernels/cuda/matvec.h) against the CPU's product of the same bf16-rounded
// operands: every row count it takes, weight counts that leave a warp's rows half used, inner sizes that end
// inside a 256-column step and inside the unrolled group of steps, padded rows, beta 0 and 2, f32 and bf16
// results; and the calls it must leave to cuBLASLt.
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

TEST(GpuFewRowsMatmul, MatchesCpuForEveryRowCount) {
  RATPLUS_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const int64_t k : {8, 264, 2056})
    for (const int64_t n : {1, 5, 67, 1031})
      for (int64_t m = 1; m <= cuda::kMaxFewRows; ++m)
        for (const double beta : {0.0, 2.0})
          for (const DType out : {DType::f32, DType::bf16}) {
            const std::string what = fmt::format("m {} n {} k {} beta {} {}", m, n, k, beta, dtype_name(out));
            Pair a(m, k, ++seed, 1.0, 8), b(n, k, ++seed, 1.0, 16), c(m, n, ++seed, 1.0, 3);
            const DeviceBf16 a16 = round_to_bf16(a, k + 8), b16 = round_to_bf16(b, k + 16);
            if (out == DType::f32) {
              matmul(c.h, a.h, false, b.h, true, 0.5, beta);
              ASSERT_TRUE(cuda::few_rows_matmul(c.d, a16.t, false, b16.t, true, 0.5, beta)) << what;
              c.expect_matches(1e-4, what.c_str());
            } else {
              // c rounded to bf16 first, as both products then scale the same old values by beta
              Pair rounded(m, n, seed, 1.0, 3);
              const DeviceBf16 c16 = round_to_bf16(rounded, n);
              matmul(rounded.h, a.h, false, b.h, true, 0.5, beta);
              ASSERT_TRUE(cuda::few_rows_matmul(c16.t, a16.t, false, b16.t, true, 0.5, beta)) << what;
              convert_tensor(rounded.d, c16.t);
              rounded.expect_matches(8e-3, what.c_str());
            }
          }
}

TEST(GpuFewRowsMatmul, LeavesOtherCallsToCublasLt) {
  RATPLUS_REQUIRE_GPU();
  Pair a(9, 16, 1), b(16, 16, 2), c(9, 16, 3), odd(2, 12, 4), odd_b(16, 12, 5);
  const DeviceBf16 a16 = round_to_bf16(a, 16), b16 = round_to_bf16(b, 16), odd16 = round_to_bf16(odd, 12),
                   odd_b16 = round_to_bf16(odd_b, 12);
  const DeviceBf16 c16(9, 16, 16), square(16, 16, 16), narrow(2, 16, 16);
  EXPECT_FALSE(cuda::few_rows_matmul(c16.t, a16.t, false, b16.t, true, 1, 0)) << "9 rows";
  EXPECT_FALSE(cuda::few_rows_matmul(narrow.t, a16.t.rows_slice(0, 2), false, b16.t, false, 1, 0)) << "B not transposed";
  EXPECT_FALSE(cuda::few_rows_matmul(square.t, a16.t.rows_slice(0, 2), true, b16.t, true, 1, 0)) << "A transposed";
  EXPECT_FALSE(cuda::few_rows_matmul(narrow.t, odd16.t, false, odd_b16.t, true, 1, 0)) << "k = 12";
  EXPECT_FALSE(cuda::few_rows_matmul(c.d.rows_slice(0, 2), a.d.rows_slice(0, 2), false, b.d, true, 1, 0)) << "f32";
}

#endif

}  // namespace
}  // namespace ratplus::test
