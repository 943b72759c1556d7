// CUDA device discovery (see device.h).
#include "core/device.h"

#include "core/error.h"

#include <fstream>
#include <unistd.h>
#include <stdexcept>

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

Device select_device(DeviceChoice choice) {
  if (choice == DeviceChoice::cpu) return Device::cpu;
  const bool gpu = cuda_device_count() > 0;
  require_input(gpu || choice == DeviceChoice::automatic,
                "device cuda: no usable GPU (this build has no CUDA backend, or the machine has no GPU)");
  return gpu ? Device::cuda : Device::cpu;
}

void use_local_gpu(int local_rank) {
#ifdef RATPLUS_HAVE_CUDA
  const int count = cuda_device_count();
  if (count > 0 && cudaSetDevice(local_rank % count) != cudaSuccess)
    throw std::runtime_error("cudaSetDevice failed for local rank " + std::to_string(local_rank));
#else
  (void)local_rank;
#endif
}

int current_gpu() {
  int device = 0;
#ifdef RATPLUS_HAVE_CUDA
  if (cuda_device_count() == 0 || cudaGetDevice(&device) != cudaSuccess) device = 0;
#endif
  return device;
}

std::string current_gpu_identity() {
#ifdef RATPLUS_HAVE_CUDA
  int device = 0;
  char bus[64] = {};
  char host[256] = {};
  if (cuda_device_count() == 0 || cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetPCIBusId(bus, sizeof bus, device) != cudaSuccess)
    return "";
  gethostname(host, sizeof host - 1);
  return std::string(host) + "/" + bus;
#else
  return "";
#endif
}

size_t available_memory(Device device) {
#ifdef RATPLUS_HAVE_CUDA
  if (device == Device::cuda) {
    size_t free = 0, total = 0;
    return cudaMemGetInfo(&free, &total) == cudaSuccess ? free : 0;
  }
#endif
  (void)device;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(64, '\n');
  }
  return 0;
}

void synchronize([[maybe_unused]] Device device) {
#ifdef RATPLUS_HAVE_CUDA
  if (device != Device::cuda) return;
  const cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) throw std::runtime_error(std::string("cudaDeviceSynchronize: ") + cudaGetErrorString(err));
#endif
}

size_t peak_resident_memory() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return 1024 * std::stoull(line.substr(6));  // the value is in kB
  throw std::runtime_error("/proc/self/status has no VmHWM line");
}

}  // namespace ratplus
