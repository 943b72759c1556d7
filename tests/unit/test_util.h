// Helpers shared by the unit tests: owned random tensors, element access in double, naive references,
// a central finite-difference gradient checker, and the check of an InputError's message.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace ratplus::test {

// A CPU tensor that owns its memory; `pad` extra columns make the row stride larger than the width.
struct Owned {
  Buffer buffer;
  Tensor t;
  Owned(int64_t rows, int64_t cols, DType dtype = DType::f64, int64_t pad = 0)
      : buffer(static_cast<size_t>(rows * (cols + pad)) * dtype_size(dtype), Device::cpu),
        t{buffer.data(), rows, cols, cols + pad, dtype, Device::cpu} {}
  operator Tensor() const { return t; }
};

inline double get(const Tensor& t, int64_t r, int64_t c) {
  return t.dtype == DType::f64 ? t.ptr<double>()[r * t.ld + c] : t.ptr<float>()[r * t.ld + c];
}
inline void set(const Tensor& t, int64_t r, int64_t c, double v) {
  if (t.dtype == DType::f64)
    t.ptr<double>()[r * t.ld + c] = v;
  else
    t.ptr<float>()[r * t.ld + c] = static_cast<float>(v);
}

inline Owned random(int64_t rows, int64_t cols, uint64_t seed, double scale = 1.0, DType dtype = DType::f64,
                    int64_t pad = 0) {
  Owned o(rows, cols, dtype, pad);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) set(o.t, r, c, scale * normal(seed, r * cols + c));
  return o;
}

// Σ w ⊙ y: a scalar objective whose gradient with respect to y is w.
inline double weighted_sum(const Tensor& y, const Tensor& w) {
  double s = 0;
  for (int64_t r = 0; r < y.rows; ++r)
    for (int64_t c = 0; c < y.cols; ++c) s += get(y, r, c) * get(w, r, c);
  return s;
}

inline void expect_close(const Tensor& actual, const Tensor& expected, double tol, const char* what) {
  ASSERT_EQ(actual.rows, expected.rows) << what;
  ASSERT_EQ(actual.cols, expected.cols) << what;
  for (int64_t r = 0; r < actual.rows; ++r)
    for (int64_t c = 0; c < actual.cols; ++c) {
      const double a = get(actual, r, c), e = get(expected, r, c);
      ASSERT_NEAR(a, e, tol * std::max(1.0, std::abs(e))) << what << " at (" << r << ", " << c << ")";
    }
}

// Compares `analytic` with central differences of `loss` with respect to every element of x (at most
// max_checks of them, spread evenly), in double precision.
inline void expect_gradient(const Tensor& x, const Tensor& analytic, const std::function<double()>& loss,
                            const char* what, double tol = 1e-6, int64_t max_checks = 400) {
  const int64_t n = x.rows * x.cols;
  const int64_t stride = std::max<int64_t>(1, n / max_checks);
  const double h = 1e-5;
  for (int64_t i = 0; i < n; i += stride) {
    const int64_t r = i / x.cols, c = i % x.cols;
    const double saved = get(x, r, c);
    set(x, r, c, saved + h);
    const double up = loss();
    set(x, r, c, saved - h);
    const double down = loss();
    set(x, r, c, saved);
    const double numeric = (up - down) / (2 * h);
    const double a = get(analytic, r, c);
    ASSERT_NEAR(a, numeric, tol * std::max(1.0, std::abs(numeric))) << what << " element (" << r << ", " << c << ")";
  }
}

// Runs `action` and expects an InputError whose message contains every fragment.
inline void expect_input_error(const std::function<void()>& action, const std::vector<std::string>& fragments) {
  try {
    action();
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    const std::string message = e.what();
    for (const std::string& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message << "\nlacks: " << fragment;
  }
}

}  // namespace ratplus::test
