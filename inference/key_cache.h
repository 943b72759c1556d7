// Where a decoding cache keeps a head group's keys (SPEC §3): only the positions its key set can still
// attend to — the P sinks, every dilated position (j + 1) mod D = 0 at or after P, and a ring of the last
// W + 1 other positions — so a sequence of up to T positions needs P + ⌊T/D⌋ + W + 1 slots at most
// (D = 1, dense: exactly T, no ring). A slot's absolute position is stored beside it; the ring reuses slots, and a
// stale entry falls out of every later key set, so attention filters slots by position alone.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cache_append.h"

namespace ratplus {

class CacheLayout {
 public:
  CacheLayout(const KeySet& keys, int64_t max_len);

  int64_t capacity() const { return slots_.capacity(); }
  // The slot of position j (0 ≤ j < max_len).
  int64_t slot(int64_t j) const { return slots_.slot(j); }
  // The regions as the decoding kernels compute slots.
  const CacheSlots& slots() const { return slots_; }

  // How positions 0 … n − 1 of a prompt reach their slots in a few block copies: rows `position`,
  // `position + step`, … (`count` of them) go to slots `slot` … slot + count − 1. The ring receives every one
  // of the last positions, sinks and dilated ones too; ring_position() says which of its slots hold a key of
  // their own (the others are empty: −1).
  struct Run {
    int64_t slot, position, count, step;
  };
  std::vector<Run> prompt_runs(int64_t n) const;
  // The position a slot holds after a prompt of n positions, or −1.
  int64_t position_after_prompt(int64_t slot, int64_t n) const;

 private:
  KeySet keys_;
  CacheSlots slots_;
};

}  // namespace ratplus
