// CUDA device discovery (see device.h).
#include "core/device.h"

#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace ratplus {

int cuda_device_count() {
#ifdef RATPLUS_HAVE_CUDA
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
#else
  return 0;
#endif
}

}  // namespace ratplus
