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

std::vector<CacheLayout::Run> CacheLayout::prompt_runs(int64_t n) const {
  std::vector<Run> runs;
  const auto add = [&](int64_t slot, int64_t position, int64_t count, int64_t step) {
    if (count > 0) runs.push_back({slot, position, count, step});
  };
  add(0, 0, std::min(sinks_, n), 1);
  if (keys_.dilation > 0)  // positions m·D − 1 below n, from the first multiple at or after P
    add(sinks_, first_multiple_ * keys_.dilation - 1, std::min(dilated_, n / keys_.dilation - first_multiple_ + 1),
        keys_.dilation);
  if (ring_ > 0) {  // the last ring_ positions, wrapping around the ring once at most
    const int64_t first = std::max<int64_t>(0, n - ring_), wrap = (first / ring_ + 1) * ring_;
    add(sinks_ + dilated_ + first % ring_, first, std::min(n, wrap) - first, 1);
    add(sinks_ + dilated_, wrap, n - wrap, 1);
  }
  return runs;
}

int64_t CacheLayout::position_after_prompt(int64_t s, int64_t n) const {
  if (s < sinks_) return s < n ? s : -1;
  if (s < sinks_ + dilated_) {
    const int64_t j = (first_multiple_ + s - sinks_) * keys_.dilation - 1;
    return j < n ? j : -1;
  }
  // The ring slot r holds the last position below n with j mod ring = r, when it is neither sink nor dilated.
  const int64_t r = s - sinks_ - dilated_;
  if (n <= r) return -1;
  const int64_t j = (n - 1 - r) / ring_ * ring_ + r;
  return slot(j) == s ? j : -1;
}

}  // namespace ratplus
