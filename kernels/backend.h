// What an op entry point (kernels/<family>.cpp) does before any arithmetic: check its arguments — shapes,
// element types, devices, aliasing — with messages that name the op, then dispatch by device to `cpu::`
// (kernels/cpu/, the reference) or `cuda::` (kernels/cuda/, when the CUDA backend is built). The
// implementations behind the dispatch trust their arguments.
#pragma once

#include <fmt/format.h>

#include <initializer_list>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "core/tensor.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"

namespace ratplus {

[[noreturn]] inline void unsupported_device(const char* op, const Tensor& t) {
  throw InputError(fmt::format("{}: tensors on {} are not supported by this build", op, device_name(t.device)));
}

// Argument checks of one op; every failure is a std::logic_error "<op>: <what>" (a caller's bug).
class OpCheck {
 public:
  explicit OpCheck(const char* op) : op_(op) {}

  void that(bool ok, const std::string& what) const {
    if (!ok) throw std::logic_error(fmt::format("{}: {}", op_, what));
  }
  void shape(const Tensor& t, const char* name, int64_t rows, int64_t cols) const {
    that(t.rows == rows && t.cols == cols,
         fmt::format("{} is {}x{}, expected {}x{}", name, t.rows, t.cols, rows, cols));
  }
  void dtype(const Tensor& t, const char* name, DType want) const {
    that(t.dtype == want, fmt::format("{} is {}, expected {}", name, dtype_name(t.dtype), dtype_name(want)));
  }
  // Every tensor on `device`.
  void device(Device device, std::initializer_list<const Tensor*> tensors) const {
    for (const Tensor* t : tensors)
      that(t->device == device, fmt::format("a tensor on {} among tensors on {}", device_name(t->device),
                                            device_name(device)));
  }
  // The activation type of the device: f32 or f64 on the CPU, f32 or bf16 on the GPU.
  void activations(const Tensor& t, const char* name) const {
    const bool ok = t.device == Device::cpu ? t.dtype == DType::f32 || t.dtype == DType::f64
                                            : t.dtype == DType::f32 || t.dtype == DType::bf16;
    that(ok, fmt::format("{} is {}, which {} activations are not", name, dtype_name(t.dtype), device_name(t.device)));
  }
  // Row statistics (rstd, log-sum-exp, row losses, partials), weight gradients and recurrence states: the
  // activation type on the CPU, f32 on the GPU.
  void statistics(const Tensor& t, const char* name, const Tensor& activations) const {
    dtype(t, name, statistics_type(activations));
  }
  // `out` and `in` share no element, or are the same view (an element-wise op in place).
  void apart_or_same(const Tensor& out, const char* out_name, const Tensor& in, const char* in_name) const {
    const bool same = out.data == in.data && out.ld == in.ld && out.rows == in.rows && out.cols == in.cols;
    that(same || !overlap(out, in), fmt::format("{} partly overlaps {}", out_name, in_name));
  }
  void apart(const Tensor& out, const char* out_name, const Tensor& in, const char* in_name) const {
    that(!overlap(out, in), fmt::format("{} overlaps {}", out_name, in_name));
  }

  static DType statistics_type(const Tensor& activations) {
    return activations.device == Device::cpu ? activations.dtype : DType::f32;
  }

 private:
  // Whether two views share an element: exactly for views of one row stride (column slices of one matrix),
  // by their memory spans otherwise.
  static bool overlap(const Tensor& a, const Tensor& b) {
    if (a.empty() || b.empty() || a.numel() == 0 || b.numel() == 0) return false;
    const auto* a0 = static_cast<const char*>(a.data);
    const auto* b0 = static_cast<const char*>(b.data);
    const size_t esz = dtype_size(a.dtype);
    if (a.ld == b.ld && a.ld > 0 && a.dtype == b.dtype && (b0 - a0) % static_cast<std::ptrdiff_t>(esz) == 0) {
      // b(r, c) = a(r + q, c + s): columns [s, s + b.cols) of the rows from q on, wrapping past ld into the next.
      const int64_t d = (b0 - a0) / static_cast<std::ptrdiff_t>(esz), ld = a.ld;
      const int64_t q = d >= 0 ? d / ld : -((-d + ld - 1) / ld), s = d - q * ld;
      const auto rows_meet = [&](int64_t shift) { return shift < a.rows && shift + b.rows > 0; };
      return (s < a.cols && rows_meet(q)) || (s + b.cols > ld && rows_meet(q + 1));
    }
    const auto end = [](const char* begin, const Tensor& t) {
      return begin + ((t.rows - 1) * t.ld + t.cols) * dtype_size(t.dtype);
    };
    return a0 < end(b0, b) && b0 < end(a0, a);
  }

  const char* op_;
};

}  // namespace ratplus

// In an entry point, after its checks: `return RATPLUS_DISPATCH(x, op(args...));` calls cuda::op(args...)
// when x lives on the GPU and cpu::op(args...) otherwise.
#ifdef RATPLUS_HAVE_CUDA
#define RATPLUS_DISPATCH(tensor, call) ((tensor).device == Device::cuda ? cuda::call : cpu::call)
#else
#define RATPLUS_DISPATCH(tensor, call) \
  ((tensor).device == Device::cuda ? (unsupported_device(__func__, tensor), cpu::call) : cpu::call)
#endif

