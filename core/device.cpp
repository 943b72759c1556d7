// CUDA device discovery (see device.h).
#include "core/device.h"

#include "core/error.h"

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

Device select_device(const std::string& choice) {
  if (choice == "cpu") return Device::cpu;
  const bool gpu = cuda_device_count() > 0;
  require_input(gpu || choice == "auto",
                "device cuda: no usable GPU (this build has no CUDA backend, or the machine has no GPU)");
  return gpu ? Device::cuda : Device::cpu;
}

}  // namespace ratplus
