// Slots of the compact decoding cache (see key_cache.h).
#include "inference/key_cache.h"

#include <algorithm>

namespace ratplus {

CacheLayout::CacheLayout(const KeySet& keys, int64_t max_len) : keys_(keys) {
  slots_.dilation = keys.dilation;
  slots_.sinks = std::min(keys.sinks, max_len);
  slots_.ring = keys.dilation == 1 ? 0 : std::clamp<int64_t>(keys.window + 1, 1, max_len);  // D = 1 keeps all
  if (keys.dilation > 0) {
    slots_.first_multiple = (keys.sinks + 1 + keys.dilation - 1) / keys.dilation;  // the first m with m·D − 1 ≥ P
    slots_.dilated = std::max<int64_t>(0, max_len / keys.dilation - slots_.first_multiple + 1);
  }
}

std::vector<CacheLayout::Run> CacheLayout::prompt_runs(int64_t n) const {
  const CacheSlots& r = slots_;
  const int64_t d = keys_.dilation;
  std::vector<Run> runs;
  const auto add = [&](int64_t slot, int64_t position, int64_t count, int64_t step) {
    if (count > 0) runs.push_back({slot, position, count, step});
  };
  add(0, 0, std::min(r.sinks, n), 1);
  if (d > 0)  // positions m·D − 1 below n, from the first multiple at or after P
    add(r.sinks, r.first_multiple * d - 1, std::min(r.dilated, n / d - r.first_multiple + 1), d);
  if (r.ring > 0) {  // the last r.ring positions, wrapping around the ring once at most
    const int64_t first = std::max<int64_t>(0, n - r.ring), wrap = (first / r.ring + 1) * r.ring;
    add(r.sinks + r.dilated + first % r.ring, first, std::min(n, wrap) - first, 1);
    add(r.sinks + r.dilated, wrap, n - wrap, 1);
  }
  return runs;
}

int64_t CacheLayout::position_after_prompt(int64_t s, int64_t n) const {
  const CacheSlots& r = slots_;
  if (s < r.sinks) return s < n ? s : -1;
  if (s < r.sinks + r.dilated) {
    const int64_t j = (r.first_multiple + s - r.sinks) * keys_.dilation - 1;
    return j < n ? j : -1;
  }
  // Ring slot i holds the last position below n with j mod ring = i, when it is neither sink nor dilated.
  const int64_t i = s - r.sinks - r.dilated;
  if (n <= i) return -1;
  const int64_t j = (n - 1 - i) / r.ring * r.ring + i;
  return slot(j) == s ? j : -1;
}

}  // namespace ratplus
