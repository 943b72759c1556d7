// Which keys a top-k block head attends to on the CPU (SPEC §6): per (sequence, head), the block summaries
// — computed from the sequence's keys, or read from a decoding cache's summaries — and per query the
// selected blocks, joined with the head's fixed key set (local window, sinks, dilated positions).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace ratplus::cpu {

template <class T>
class TopKSelector {
 public:
  // Head h of sequence b of a forward call whose head_blocks[h] is active.
  TopKSelector(const AttentionArgs& a, int64_t b, int64_t h);

  // Selects the blocks of the query q at position t; attends(j) then says whether key position j ≤ t
  // is in that query's key set.
  void select(const T* q, int64_t t);
  bool attends(int64_t j) const {
    return in_key_set(keys_, t_, j) || (j >= 0 && j <= t_ && selected_[j / topk_.block]);
  }

 private:
  const T* summary(int64_t block) const { return summaries_ + block * ld_; }

  KeySet keys_;
  BlockTopK topk_;
  int64_t dh_;
  std::vector<T> own_;  // sequence layout: the summaries of the complete blocks, computed here
  const T* summaries_ = nullptr;
  int64_t ld_ = 0;
  int64_t t_ = -1;
  std::vector<T> scores_;
  std::vector<char> selected_;
  std::vector<int64_t> order_;
};

extern template class TopKSelector<float>;
extern template class TopKSelector<double>;

}  // namespace ratplus::cpu
