// Top-k block selection for the CPU attention (see topk_attention.h). On a sequence, the complete blocks'
// summaries are folded from the keys once per (sequence, head); in a decoding cache they lie beside the keys.
#include "kernels/cpu/topk_attention.h"

#include "kernels/cpu/common.h"
#include "kernels/cpu/topk_blocks.h"

namespace ratplus::cpu {

template <class T>
TopKSelector<T>::TopKSelector(const AttentionArgs& a, int64_t b, int64_t h)
    : keys_(a.head_keys[h]), topk_(a.head_blocks[h]), dh_(a.q.cols / static_cast<int64_t>(a.head_keys.size())) {
  const int64_t width = block_summary_width(topk_.score, dh_);
  if (a.key_layout == KeyLayout::cache) {
    const int64_t blocks = a.block_summaries.rows / a.batch;
    summaries_ = &at<T>(a.block_summaries, b * blocks, h * width);
    ld_ = a.block_summaries.ld;
    return;
  }
  const int64_t complete = a.k_len / topk_.block;
  own_.resize(complete * width);
  for (int64_t j = 0; j < complete * topk_.block; ++j)
    fold_key(topk_.score, own_.data() + j / topk_.block * width, &at<T>(a.k, b * a.k_len + j, h * dh_), dh_,
             j % topk_.block == 0);
  summaries_ = own_.data();
  ld_ = width;
}

template <class T>
void TopKSelector<T>::select(const T* q, int64_t t) {
  t_ = t;
  const int64_t earlier = t / topk_.block;
  scores_.resize(earlier);
  for (int64_t blk = 0; blk < earlier; ++blk) scores_[blk] = block_score(topk_.score, q, summary(blk), dh_, topk_.block);
  select_blocks<T>(topk_, t, scores_, selected_, order_);
}

template class TopKSelector<float>;
template class TopKSelector<double>;

}  // namespace ratplus::cpu
