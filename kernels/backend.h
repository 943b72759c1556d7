// How an op finds its implementation: by the device of its tensors (CUDA when they live on the GPU and
// the CUDA backend is built) and, on the CPU, by element type (float for running, double for gradient
// checks). Included only by kernel implementation files.
#pragma once

#include <fmt/format.h>

#include "core/tensor.h"

namespace ratplus {

[[noreturn]] inline void unsupported_device(const char* op, const Tensor& t) {
  throw InputError(fmt::format("{}: tensors on {} are not supported by this build", op, device_name(t.device)));
}

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

}  // namespace ratplus

#ifdef RATPLUS_HAVE_CUDA
// In an op: `RATPLUS_ROUTE_CUDA(x, cuda::op(args...));` returns after the CUDA call when x is on the GPU.
#define RATPLUS_ROUTE_CUDA(tensor, call)   \
  if ((tensor).device == Device::cuda) { \
    call;                                \
    return;                              \
  }
#else
#define RATPLUS_ROUTE_CUDA(tensor, call) \
  if ((tensor).device == Device::cuda) unsupported_device(__func__, tensor);
#endif
// For ops that have no CUDA implementation yet.
#define RATPLUS_CPU_ONLY(tensor) \
  if ((tensor).device != Device::cpu) unsupported_device(__func__, tensor);
