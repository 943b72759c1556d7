// Shared pieces of the CPU reference kernels: the choice of element type (float for running, double for
// gradient checks) and strided element access.
#pragma once

#include <fmt/format.h>

#include <stdexcept>

#include "core/tensor.h"

namespace ratplus::cpu {

// Calls f.template operator()<T>() with T = float or double according to `t`.
template <class F>
void with_cpu_float(DType t, const char* op, F&& f) {
  if (t == DType::f32) {
    f.template operator()<float>();
  } else if (t == DType::f64) {
    f.template operator()<double>();
  } else {
    throw std::logic_error(fmt::format("{}: the CPU backend computes in f32 or f64, not {}", op, dtype_name(t)));
  }
}

template <class T>
inline T& at(const Tensor& t, int64_t r, int64_t c) {
  return t.ptr<T>()[r * t.ld + c];
}

}  // namespace ratplus::cpu
