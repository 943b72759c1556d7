// Helpers for the GPU tests: the same random matrix on the CPU and on the GPU, comparison of the GPU result
// with the CPU reference, and the skip where no GPU is available.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/buffer.h"
#include "core/device.h"
#include "core/rng.h"
#include "kernels/elementwise.h"

#define RATPLUS_REQUIRE_GPU() \
  if (::ratplus::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device in this build or on this machine"

namespace ratplus::test {

// A matrix (rows × cols, row stride ld) filled with scale · Normal(0, 1), on the CPU (h) and the GPU (d).
// An f32 GPU vector of n elements (the attention backward's workspace).
struct DeviceWorkspace {
  Buffer buffer;
  Tensor t;
  explicit DeviceWorkspace(int64_t n) : buffer(n * 4, Device::cuda), t{buffer.data(), 1, n, n, DType::f32, Device::cuda} {}
};

struct Pair {
  Buffer host, device;
  Tensor h, d;
  Pair(int64_t rows, int64_t cols, uint64_t seed, double scale = 1.0, int64_t pad = 0)
      : host(rows * (cols + pad) * 4, Device::cpu), device(rows * (cols + pad) * 4, Device::cuda),
        h{host.data(), rows, cols, cols + pad, DType::f32, Device::cpu},
        d{device.data(), rows, cols, cols + pad, DType::f32, Device::cuda} {
    for (int64_t i = 0; i < rows * (cols + pad); ++i) h.ptr<float>()[i] = static_cast<float>(scale * normal(seed, i));
    copy_tensor(d, h);
  }
  // Asserts that the GPU values match the CPU ones to tol · max(1, |cpu value|).
  void expect_matches(double tol, const char* what) const {
    const std::vector<float> gpu = to_host_floats(d);
    for (int64_t r = 0; r < h.rows; ++r)
      for (int64_t c = 0; c < h.cols; ++c) {
        const float want = h.ptr<float>()[r * h.ld + c], got = gpu[r * h.cols + c];
        ASSERT_NEAR(got, want, tol * std::max(1.0f, std::abs(want))) << what << " at (" << r << ", " << c << ")";
      }
  }
};

// A bf16 matrix on the GPU whose rows are ld elements apart.
struct DeviceBf16 {
  Buffer buffer;
  Tensor t;
  DeviceBf16(int64_t rows, int64_t cols, int64_t ld)
      : buffer(rows * ld * 2, Device::cuda), t{buffer.data(), rows, cols, ld, DType::bf16, Device::cuda} {}
};

// x.h and x.d become x rounded to bf16; returns that bf16 copy on the GPU, rows ld elements apart.
inline DeviceBf16 round_to_bf16(Pair& x, int64_t ld) {
  DeviceBf16 r(x.h.rows, x.h.cols, ld);
  convert_tensor(r.t, x.d);
  convert_tensor(x.d, r.t);
  copy_tensor(x.h, x.d);
  return r;
}

}  // namespace ratplus::test
