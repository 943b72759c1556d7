// The CUDA RMSNorm against the CPU reference on random inputs of awkward sizes (rows and widths that are
// not multiples of the block size, strided views).
#include "gpu_test_util.h"
#include "kernels/norm.h"

namespace ratplus::test {
namespace {

TEST(GpuRmsNorm, MatchesCpuOnAwkwardShapes) {
  RATPLUS_REQUIRE_GPU();
  for (auto [rows, cols, pad] : {std::tuple{1, 1, 0}, {37, 1000, 3}, {300, 2048, 0}, {5, 33, 7}}) {
    Pair x(rows, cols, 1, 1.0, pad), w(1, cols, 2), y(rows, cols, 3), rstd(1, rows, 4);
    Pair dy(rows, cols, 5, 1.0, pad), dx(rows, cols, 6), dw(1, cols, 7);
    rmsnorm_forward(y.h, rstd.h, x.h, w.h, 1e-6);
    rmsnorm_forward(y.d, rstd.d, x.d, w.d, 1e-6);
    y.expect_matches(1e-5, "y");
    rstd.expect_matches(1e-5, "rstd");
    rmsnorm_backward(dx.h, dw.h, dy.h, x.h, w.h, rstd.h, true);
    rmsnorm_backward(dx.d, dw.d, dy.d, x.d, w.d, rstd.d, true);
    dx.expect_matches(1e-5, "dx");
    dw.expect_matches(1e-4, "dw");
  }
}

}  // namespace
}  // namespace ratplus::test
