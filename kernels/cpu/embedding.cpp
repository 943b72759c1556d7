// CPU embedding lookup and gradient. The backward is serial over rows (rows may share a token).
#include "kernels/embedding.h"

#include <cstring>

#include "kernels/backend.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace ratplus {

void embedding_forward(Tensor out, const int32_t* tokens, const Tensor& table) {
  RATPLUS_ROUTE_CUDA(out, cuda::embedding_forward(out, tokens, table));
  const size_t row_bytes = out.cols * dtype_size(out.dtype);
  for (int64_t r = 0; r < out.rows; ++r) {
    check_internal(tokens[r] >= 0 && tokens[r] < table.rows, "embedding_forward: token out of range");
    std::memcpy(static_cast<char*>(out.data) + r * out.ld * dtype_size(out.dtype),
                static_cast<const char*>(table.data) + tokens[r] * table.ld * dtype_size(table.dtype), row_bytes);
  }
}

void embedding_backward(Tensor dtable, const int32_t* tokens, const Tensor& dout) {
  RATPLUS_ROUTE_CUDA(dout, cuda::embedding_backward(dtable, tokens, dout));
  with_cpu_float(dout.dtype, __func__, [&]<class T>() {
    for (int64_t r = 0; r < dout.rows; ++r) {
      T* dst = dtable.ptr<T>() + tokens[r] * dtable.ld;
      const T* src = dout.ptr<T>() + r * dout.ld;
      for (int64_t c = 0; c < dout.cols; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace ratplus
