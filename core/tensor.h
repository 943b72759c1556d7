// Tensors: a small non-owning view of a row-major matrix (rows × cols with a row stride `ld`), plus
// its element type and device. Every op works on these views; memory is owned by Buffer (core/buffer.h).
// A column slice of a matrix (one of the five blocks of the fused input projection, one head) is again a
// view, so ops read slices in place instead of copying them out.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/error.h"

namespace ratplus {

// i8: the 8-bit decoding cache's integers (kernels/cache_append.h).
enum class DType : uint8_t { f32, f64, bf16, i32, i8 };
enum class Device : uint8_t { cpu, cuda };

inline size_t dtype_size(DType t) {
  return t == DType::f64 ? 8 : t == DType::bf16 ? 2 : t == DType::i8 ? 1 : 4;
}
inline const char* dtype_name(DType t) {
  return t == DType::f64    ? "f64"
         : t == DType::f32  ? "f32"
         : t == DType::bf16 ? "bf16"
         : t == DType::i8   ? "i8"
                            : "i32";
}
inline const char* device_name(Device d) { return d == Device::cuda ? "cuda" : "cpu"; }

struct Tensor {
  void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;  // elements between the starts of consecutive rows
  DType dtype = DType::f32;
  Device device = Device::cpu;

  int64_t numel() const { return rows * cols; }
  bool contiguous() const { return ld == cols || rows <= 1; }
  bool empty() const { return data == nullptr; }

  template <class T>
  T* ptr() const { return static_cast<T*>(data); }

  Tensor cols_slice(int64_t c0, int64_t n) const {
    check_internal(c0 >= 0 && c0 + n <= cols, "cols_slice out of range");
    Tensor t = *this;
    t.data = static_cast<char*>(data) + c0 * dtype_size(dtype);
    t.cols = n;
    return t;
  }
  Tensor rows_slice(int64_t r0, int64_t n) const {
    check_internal(r0 >= 0 && r0 + n <= rows, "rows_slice out of range");
    Tensor t = *this;
    t.data = static_cast<char*>(data) + r0 * ld * dtype_size(dtype);
    t.rows = n;
    return t;
  }
  // The same contiguous memory seen with another shape.
  Tensor reshaped(int64_t new_rows, int64_t new_cols) const {
    check_internal(contiguous() && new_rows * new_cols == numel(), "reshape of a non-contiguous tensor");
    Tensor t = *this;
    t.rows = new_rows;
    t.cols = new_cols;
    t.ld = new_cols;
    return t;
  }
};

}  // namespace ratplus
