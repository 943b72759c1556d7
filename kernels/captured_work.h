// Work that launches the same kernels on the same memory every time it runs — a decoding step, whose
// shapes are fixed and whose inputs are copied into place beforehand — replayed as a CUDA graph, so that
// a step of a few hundred small kernels costs one launch. The first run goes eagerly (cuBLASLt plans and
// other first-use setup must not happen inside a capture), the second is captured on the GPU context's
// stream and launched, later runs launch that graph. On the CPU the work simply runs.
#pragma once

#include <functional>

#include "core/tensor.h"

namespace ratplus {

class CapturedWork {
 public:
  explicit CapturedWork(Device device) : device_(device) {}
  ~CapturedWork();
  CapturedWork(const CapturedWork&) = delete;
  CapturedWork& operator=(const CapturedWork&) = delete;

  // Runs `work` (queued on the GPU context's stream, not waited for). `key` names the memory the work
  // touches beyond its own (say, an output tensor): a new key drops the graph and starts over.
  void run(const std::function<void()>& work, const void* key);

 private:
  void release();

  Device device_;
  const void* key_ = nullptr;
  int runs_ = 0;           // with the current key
  void* graph_ = nullptr;  // cudaGraphExec_t once captured
};

}  // namespace ratplus
