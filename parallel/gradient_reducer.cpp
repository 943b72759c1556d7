// Bucketed, overlapped data-parallel gradient reduction (see gradient_reducer.h).
#include "parallel/gradient_reducer.h"

#include <algorithm>

namespace ratplus {

GradientReducer::GradientReducer(Communicator& dp, Tensor grads, std::vector<int64_t> shards, int64_t bucket_elements)
    : dp_(dp), grads_(grads), shards_(std::move(shards)), bucket_(std::max<int64_t>(bucket_elements, 1)),
      next_end_(grads.numel()) {}

void GradientReducer::ready(int64_t offset) {
  if (dp_.size() == 1) return;
  // Buckets end at N, N − bucket, N − 2·bucket, …; start every whole bucket inside [offset, N).
  while (next_end_ - bucket_ >= offset) {
    start(next_end_ - bucket_, next_end_);
    next_end_ -= bucket_;
  }
}

void GradientReducer::finish() {
  if (dp_.size() == 1) return;
  if (next_end_ > 0) start(0, next_end_);
  next_end_ = 0;
  dp_.finish_started();
}

void GradientReducer::start(int64_t begin, int64_t end) {
  const Tensor bucket = grads_.cols_slice(begin, end - begin);
  if (shards_.empty()) return dp_.start_allreduce_sum(bucket);
  std::vector<int64_t> offsets(shards_.size());
  for (size_t r = 0; r < shards_.size(); ++r) offsets[r] = std::clamp(shards_[r], begin, end) - begin;
  dp_.start_reduce_scatter_sum(bucket, offsets);
}

}  // namespace ratplus
