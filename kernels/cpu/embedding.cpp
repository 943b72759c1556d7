// CPU embedding lookup and gradient. The backward is serial over rows (rows may share a token).
#include "kernels/cpu/cpu_ops.h"

#include <cstring>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table, int64_t vocab_begin) {
  const size_t element = dtype_size(out.dtype), row_bytes = out.cols * element;
  for (int64_t r = 0; r < out.rows; ++r) {
    char* dst = static_cast<char*>(out.data) + r * out.ld * element;
    const int64_t row = tokens[r] - vocab_begin;
    if (row >= 0 && row < table.rows) {
      std::memcpy(dst, static_cast<const char*>(table.data) + row * table.ld * element, row_bytes);
    } else {
      std::memset(dst, 0, row_bytes);
    }
  }
}

void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout, int64_t vocab_begin) {
  with_cpu_float(dout.dtype, __func__, [&]<class T>() {
    for (int64_t r = 0; r < dout.rows; ++r) {
      const int64_t row = tokens[r] - vocab_begin;
      if (row < 0 || row >= dtable.rows) continue;
      T* dst = dtable.ptr<T>() + row * dtable.ld;
      const T* src = dout.ptr<T>() + r * dout.ld;
      for (int64_t c = 0; c < dout.cols; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace ratplus::cpu
