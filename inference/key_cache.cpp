// Slots of the compact decoding cache (see key_cache.h).
#include "inference/key_cache.h"

#include <algorithm>

namespace ratplus {

CacheLayout::CacheLayout(const KeySet& keys, int64_t max_len)
    : keys_(keys),
      sinks_(std::min(keys.sinks, max_len)),
      dilated_(0),
      ring_(keys.dilation == 1 ? 0 : std::clamp<int64_t>(keys.window + 1, 1, max_len)),  // D = 1 keeps all
      first_multiple_(0) {
  if (keys.dilation > 0) {
    first_multiple_ = (keys.sinks + 1 + keys.dilation - 1) / keys.dilation;  // ⌈(P + 1) / D⌉
    dilated_ = std::max<int64_t>(0, max_len / keys.dilation - first_multiple_ + 1);
  }
}

int64_t CacheLayout::slot(int64_t j) const {
  if (j < keys_.sinks) return j;
  if (keys_.dilation > 0 && (j + 1) % keys_.dilation == 0) return sinks_ + (j + 1) / keys_.dilation - first_multiple_;
  return sinks_ + dilated_ + j % ring_;
}

}  // namespace ratplus
