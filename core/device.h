// What accelerators this process can use.
#pragma once

#include <cstddef>
#include <string>

#include "core/config_choices.h"
#include "core/tensor.h"

namespace ratplus {

// Number of usable CUDA devices; 0 in a build without the CUDA backend or on a machine without a GPU.
int cuda_device_count();

// The device a `runtime.device`-style choice names: cpu, cuda (InputError when no GPU can be used) or
// auto (the GPU when there is one).
Device select_device(DeviceChoice choice);

// Makes GPU (local_rank mod the number of GPUs) the calling thread's device; nothing without a GPU.
void use_local_gpu(int local_rank);

// The index of the calling thread's GPU (for another thread's use_local_gpu); 0 without a GPU.
int current_gpu();

// The current GPU as "host/PCI bus id" (unique over the machines of a run); "" without a GPU.
std::string current_gpu_identity();

// Bytes that can still be allocated on the device: free GPU memory, or MemAvailable of /proc/meminfo.
size_t available_memory(Device device);

// Waits until the GPU has finished all queued work (nothing to wait for on the CPU).
void synchronize(Device device);

// The peak resident set of this process in bytes (VmHWM of /proc/self/status).
size_t peak_resident_memory();

}  // namespace ratplus
