// The CUDA RMSNorm against the CPU reference on random inputs of awkward sizes (rows and widths that are
// not multiples of the block size, strided views). Skipped where no GPU is available.
#include <gtest/gtest.h>

#include "core/buffer.h"
#include "core/device.h"
#include "core/rng.h"
#include "kernels/norm.h"

namespace ratplus {
namespace {

struct Pair {  // the same matrix on the CPU and on the GPU
  Buffer host, device;
  Tensor h, d;
  Pair(int64_t rows, int64_t cols, int64_t ld, uint64_t seed)
      : host(rows * ld * 4, Device::cpu), device(rows * ld * 4, Device::cuda),
        h{host.data(), rows, cols, ld, DType::f32, Device::cpu}, d{device.data(), rows, cols, ld, DType::f32, Device::cuda} {
    for (int64_t i = 0; i < rows * ld; ++i) h.ptr<float>()[i] = static_cast<float>(normal(seed, i));
    copy_tensor(d, h);
  }
  void expect_matches(double tol, const char* what) {
    Buffer back(h.rows * h.ld * 4, Device::cpu);
    Tensor b{back.data(), h.rows, h.cols, h.ld, DType::f32, Device::cpu};
    copy_tensor(b, d);
    for (int64_t r = 0; r < h.rows; ++r)
      for (int64_t c = 0; c < h.cols; ++c) {
        const float want = h.ptr<float>()[r * h.ld + c], got = b.ptr<float>()[r * h.ld + c];
        ASSERT_NEAR(got, want, tol * std::max(1.0f, std::abs(want))) << what << " at (" << r << ", " << c << ")";
      }
  }
};

TEST(GpuRmsNorm, MatchesCpuOnAwkwardShapes) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device in this build or on this machine";
  for (auto [rows, cols, pad] : {std::tuple{1, 1, 0}, {37, 1000, 3}, {300, 2048, 0}, {5, 33, 7}}) {
    Pair x(rows, cols, cols + pad, 1), w(1, cols, cols, 2), y(rows, cols, cols, 3), rstd(1, rows, rows, 4);
    Pair dy(rows, cols, cols + pad, 5), dx(rows, cols, cols, 6), dw(1, cols, cols, 7);
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
}  // namespace ratplus
