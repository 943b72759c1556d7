// The CUDA RMSNorm against the CPU reference on random inputs of awkward sizes (rows and widths that are
// not multiples of the block size, strided views), through both forward kernels: the strided loop (widths
// that are not whole 16-byte chunks, or wider than 8 chunks per thread) and the chunked one (1, 2, 4 and 8
// chunks per thread), in f32 and with bf16 activations.
#include "gpu_test_util.h"
#include "kernels/norm.h"

namespace ratplus::test {
namespace {

TEST(GpuRmsNorm, MatchesCpuOnAwkwardShapes) {
  RATPLUS_REQUIRE_GPU();
  for (auto [rows, cols, pad] : {std::tuple{1, 1, 0}, {37, 1000, 3}, {300, 2048, 0}, {5, 33, 7}, {1, 4096, 0},
                                 {3, 4100, 4}, {2, 8192, 8}, {2, 8196, 0}}) {
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

TEST(GpuRmsNorm, Bf16MatchesCpuOnRoundedInputs) {
  RATPLUS_REQUIRE_GPU();
  for (auto [rows, cols, pad] : {std::tuple{1, 4096, 0}, {3, 2040, 8}, {2, 16384, 0}, {2, 16392, 0}, {4, 37, 3}}) {
    Pair x(rows, cols, 1, 1.0, pad), w(1, cols, 2), y(rows, cols, 3), rstd(1, rows, 4);
    const DeviceBf16 x16 = round_to_bf16(x, cols + pad), w16 = round_to_bf16(w, cols);
    const DeviceBf16 y16(rows, cols, cols);
    rmsnorm_forward(y.h, rstd.h, x.h, w.h, 1e-6);
    rmsnorm_forward(y16.t, rstd.d, x16.t, w16.t, 1e-6);
    convert_tensor(y.d, y16.t);
    y.expect_matches(8e-3, "bf16 y");
    rstd.expect_matches(1e-5, "bf16 rstd");
  }
}

}  // namespace
}  // namespace ratplus::test
