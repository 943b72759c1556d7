// The per-head key sets as the CUDA attention kernels take them: by value, as a kernel argument, so that
// no copy to the device precedes a launch. At most kMaxHeads heads per call (this rank's heads).
#pragma once

#include <span>
#include <stdexcept>
#include <string>

#include "kernels/attention.h"

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

}  // namespace ratplus::cuda
