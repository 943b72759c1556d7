// What accelerators this process can use.
#pragma once

namespace ratplus {

// Number of usable CUDA devices; 0 in a build without the CUDA backend or on a machine without a GPU.
int cuda_device_count();

}  // namespace ratplus
