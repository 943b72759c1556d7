// What the CUDA attention kernels take from AttentionArgs besides tensors: the per-head key sets by value, as
// a kernel argument, so that no copy to the device precedes a launch (at most kMaxHeads heads per call: this
// rank's heads), and the stream (the GPU context's unless the arguments name one).
#pragma once

#include <span>
#include <stdexcept>
#include <string>

#include "kernels/attention.h"
#include "kernels/cuda/gpu_context.h"

namespace ratplus::cuda {

constexpr int kMaxHeads = 128;

struct HeadKeys {
  KeySet head[kMaxHeads];
};

// head_keys, each passed through `transform` (a KeySet → KeySet map); std::logic_error above kMaxHeads.
template <class F>
HeadKeys pack_head_keys(std::span<const KeySet> head_keys, F&& transform) {
  if (head_keys.size() > kMaxHeads)
    throw std::logic_error("attention (CUDA): at most " + std::to_string(kMaxHeads) + " heads, got " +
                           std::to_string(head_keys.size()));
  HeadKeys packed{};
  for (size_t i = 0; i < head_keys.size(); ++i) packed.head[i] = transform(head_keys[i]);
  return packed;
}

inline cudaStream_t attention_stream(const AttentionArgs& a) {
  return a.stream ? static_cast<cudaStream_t>(a.stream) : cuda_stream();
}

}  // namespace ratplus::cuda
