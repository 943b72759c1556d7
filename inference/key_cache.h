// Where a decoding cache keeps a head group's keys (SPEC §3): only the positions its key set can still
// attend to — the P sinks, every dilated position (j + 1) mod D = 0 at or after P, and a ring of the last
// W + 1 other positions — so a sequence of up to T positions needs P + ⌊T/D⌋ + W + 1 slots at most
// (D = 1, dense: exactly T, no ring). A slot's absolute position is stored beside it; the ring reuses slots, and a
// stale entry falls out of every later key set, so attention filters slots by position alone.
#pragma once

#include <cstdint>

#include "kernels/attention.h"

namespace ratplus {

class CacheLayout {
 public:
  CacheLayout(const KeySet& keys, int64_t max_len);

  int64_t capacity() const { return sinks_ + dilated_ + ring_; }
  // The slot of position j (0 ≤ j < max_len).
  int64_t slot(int64_t j) const;

 private:
  KeySet keys_;
  int64_t sinks_, dilated_, ring_;  // the three regions' slots
  int64_t first_multiple_;          // the first m with m·D − 1 ≥ P
};

}  // namespace ratplus
